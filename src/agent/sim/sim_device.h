// The core every simulated device shares (docs/DEVICES.md): descriptors, the standard
// requests, configuration and alternate settings, halts, ordered per-endpoint queues, timeouts,
// cancellation and unplugging. A device adds its function by answering its vendor and class
// requests and by serving the transfer at the head of each of its endpoints.
//
// Everything runs on the agent's io thread; completions may happen inside submit().
#pragma once

#include <bitset>
#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <span>
#include <string>
#include <vector>

#include "agent/device.h"
#include "agent/sim/descriptor_builder.h"

namespace usbnet::agent::sim {

// What a simulated device is made of.
struct DeviceDescription {
  std::string name;    // as given to --simulate
  std::uint8_t speed;  // libusb_speed
  DeviceSpec device;
  std::vector<ConfigSpec> configs;
  std::vector<std::string> strings;  // index 1, 2, ... (language 0x0409)
  Bytes bos;                         // empty: none
  // Descriptors answered to GET_DESCRIPTOR with recipient interface: (interface, type) -> raw.
  std::map<std::pair<std::uint8_t, std::uint8_t>, Bytes> interface_descriptors;
};

// How a vendor or class control request ends.
struct ControlOutcome {
  enum class Kind { Done, Stall, Later };
  Kind kind = Kind::Stall;
  Bytes in;  // IN data stage (cut to wLength)
  std::chrono::milliseconds delay{0};

  static ControlOutcome stall() { return {}; }
  static ControlOutcome done(Bytes in = {}) { return {Kind::Done, std::move(in), {}}; }
  static ControlOutcome later(std::chrono::milliseconds delay, Bytes in = {}) {
    return {Kind::Later, std::move(in), delay};
  }
};

class SimHandle;

class SimDevice : public Device, public std::enable_shared_from_this<SimDevice> {
 public:
  SimDevice(boost::asio::any_io_executor executor, DeviceDescription description);
  ~SimDevice() override;

  wire::DeviceInfo info() const override;
  Expected<std::unique_ptr<DeviceHandle>, std::int32_t> open() override;

  const std::string& name() const { return description_.name; }
  // `port` on the root hub; 0 for the root hub itself.
  void set_location(std::uint8_t bus, std::uint8_t address, std::uint8_t port);
  std::uint8_t address() const { return address_; }
  // The device leaves the bus: its transfers end with NO_DEVICE, its handles answer NO_DEVICE.
  void unplug();
  bool unplugged() const { return unplugged_; }
  // Called when the device asks to leave the bus for `delay` and come back (a DETACH request).
  void on_detach(std::function<void(std::chrono::milliseconds)> handler) {
    detach_handler_ = std::move(handler);
  }

  // From handles.
  void submit(SimHandle& owner, TransferPtr transfer, TransferDone done);
  void cancel(const TransferPtr& transfer);
  void request(const DeviceRequest& request, RequestDone done);
  void cancel_all_of(const SimHandle& owner);
  void handle_closed(const SimHandle& owner) { handles_.erase(&owner); }

 protected:
  struct Pending {
    std::uint64_t serial = 0;  // tells apart transfers that reuse an address
    TransferPtr transfer;
    TransferDone done;
    const SimHandle* owner;
    std::unique_ptr<boost::asio::steady_timer> timeout;
    std::unique_ptr<boost::asio::steady_timer> delay;  // a control request answering later
  };
  struct Endpoint {
    std::uint8_t address = 0;
    std::uint8_t type = 0;  // LIBUSB_TRANSFER_TYPE_*
    std::uint16_t max_packet = 0;
    bool halted = false;
    std::deque<std::unique_ptr<Pending>> queue = {};
  };

  // The device's function.
  virtual ControlOutcome function_control(const wire::SetupPacket& setup,
                                          std::span<const std::uint8_t> out) = 0;
  // Serves the transfer at the head of a data endpoint: completes it (complete()) now, or
  // leaves it waiting (and arranges for pump() when it can go on).
  virtual void serve(Endpoint& endpoint, Pending& head) = 0;
  // The function restarts: a configuration or alternate setting was selected, or a reset.
  virtual void restart() {}
  // A USB reset (after the transfers have ended): by default the function restarts too.
  virtual void bus_reset() { restart(); }

  // Ends a pending transfer (wherever it is in its queue) and serves the next ones.
  void complete(Endpoint& endpoint, Pending& pending, wire::UrbStatus status,
                std::uint32_t actual_length, std::vector<wire::IsoPacketResult> iso = {});
  // Serves the head of an endpoint's queue, and the next, as long as they complete.
  void pump(std::uint8_t address);
  Endpoint* endpoint(std::uint8_t address);
  const boost::asio::any_io_executor& executor() const { return executor_; }
  std::uint8_t alt_setting(std::uint8_t interface_number) const;
  void request_detach(std::chrono::milliseconds delay);

  // Bulk and interrupt IN under USB's packet rules, from a message the device has ready:
  // returns the bytes the transfer takes, and sets `status` (OVERFLOW when the last packet
  // does not fit) and `consumed` (how much of the message is used up).
  static std::uint32_t packet_rules(std::size_t available, std::size_t room,
                                    std::uint16_t max_packet, wire::UrbStatus& status,
                                    std::size_t& consumed);

 private:
  void arm_timeout(std::uint8_t address, std::uint64_t serial,
                   std::chrono::steady_clock::time_point deadline);
  void select_configuration(int value);  // -1/0: unconfigured
  void rebuild_endpoints();
  void end_all(wire::UrbStatus status, const SimHandle* owner = nullptr);
  void serve_control(Pending& head);
  std::optional<ControlOutcome> standard_control(const wire::SetupPacket& setup,
                                                 std::span<const std::uint8_t> out);
  std::optional<Bytes> descriptor(std::uint8_t type, std::uint8_t index, std::uint8_t recipient,
                                  std::uint16_t w_index) const;
  const ConfigSpec* active_config() const;
  bool has_interface(std::uint8_t interface_number) const;
  std::int32_t device_request_result(const DeviceRequest& request, std::uint32_t& value);

  boost::asio::any_io_executor executor_;
  DeviceDescription description_;
  std::vector<Bytes> raw_configs_;
  std::uint8_t bus_ = 1, address_ = 0, port_ = 0;
  int configuration_ = 0;  // bConfigurationValue, 0 unconfigured
  std::map<std::uint8_t, std::uint8_t> alt_settings_;
  std::map<std::uint8_t, Endpoint> endpoints_;  // endpoint 0 and the active ones
  std::bitset<256> pumping_;                    // endpoints being pumped (re-entrancy guard)
  std::bitset<256> pump_again_;
  std::set<const SimHandle*> handles_;
  bool unplugged_ = false;
  bool remote_wakeup_ = false;
  std::uint64_t next_serial_ = 1;
  std::function<void(std::chrono::milliseconds)> detach_handler_;
};

class SimHandle final : public DeviceHandle {
 public:
  explicit SimHandle(std::shared_ptr<SimDevice> device) : device_(std::move(device)) {}
  ~SimHandle() override { device_->handle_closed(*this); }

  void request(const DeviceRequest& request, RequestDone done) override {
    device_->request(request, std::move(done));
  }
  void submit(TransferPtr transfer, TransferDone done) override {
    device_->submit(*this, std::move(transfer), std::move(done));
  }
  void cancel(const TransferPtr& transfer) override { device_->cancel(transfer); }
  void close(std::function<void()> done) override {
    device_->cancel_all_of(*this);  // completes them at once
    done();
  }

 private:
  std::shared_ptr<SimDevice> device_;
};

// The loopback stream pattern (common/loopback_device.h), fast.
void fill_pattern(std::uint8_t* data, std::size_t n, std::uint64_t offset);
// `n` bytes of the pattern from stream offset `offset`, from a table that lives as long as the
// process (empty when `n` is longer than the table serves).
wire::ByteView pattern_view(std::size_t n, std::uint64_t offset);
std::size_t count_pattern_errors(const std::uint8_t* data, std::size_t n, std::uint64_t offset);

}  // namespace usbnet::agent::sim
