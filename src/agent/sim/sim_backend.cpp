#include "agent/sim/sim_backend.h"

#include <boost/asio/steady_timer.hpp>
#include <functional>
#include <map>

#include "agent/sim/devices.h"
#include "common/log.h"

namespace usbnet::agent::sim {

namespace {

// The bus the simulated devices hang from. Linux numbers its real buses from 1 to 64
// (USB_MAXBUS), so an agent that exports both kinds never shows two devices with one bus and
// address.
constexpr std::uint8_t kSimulatedBus = 100;
constexpr std::size_t kRootHubPorts = 7;
constexpr std::uint8_t kMaxAddress = 127;

using Factory = std::shared_ptr<SimDevice> (*)(boost::asio::any_io_executor);

const std::map<std::string, Factory>& factories() {
  static const std::map<std::string, Factory> f = {
      {"loopback", &make_loopback}, {"loopback3", &make_loopback3},
      {"mouse", &make_mouse},       {"audio", &make_audio},
      {"dfu", &make_dfu},           {"usbtmc", &make_usbtmc},
      {"ftdi", &make_ftdi},
  };
  return f;
}

class SimBackend final : public Backend {
 public:
  SimBackend(boost::asio::any_io_executor executor, std::vector<std::string> names)
      : executor_(std::move(executor)) {
    for (std::size_t i = 0; i < names.size(); ++i) {
      slots_.push_back(
          std::make_unique<Slot>(Slot{names[i], nullptr, static_cast<std::uint8_t>(i + 1),
                                      boost::asio::steady_timer(executor_)}));
    }
  }

  void start(DeviceListener& listener) override {
    listener_ = &listener;
    // The root hub first, at address 1 (as Linux numbers a bus's root hub), then its devices.
    root_hub_ = make_root_hub(executor_, static_cast<std::uint8_t>(slots_.size()));
    root_hub_->set_location(kSimulatedBus, 1, 0);
    listener_->device_arrived(root_hub_);
    for (auto& slot : slots_) plug(*slot);
  }

  void stop() override {
    stopped_ = true;
    if (root_hub_) root_hub_->unplug();
    for (auto& slot : slots_) {
      slot->replug.cancel();
      if (slot->device) slot->device->unplug();
    }
  }

 private:
  struct Slot {
    std::string name;
    std::shared_ptr<SimDevice> device;
    std::uint8_t port;
    boost::asio::steady_timer replug;
  };

  // A new device on the slot's port, with the next address, as after a real enumeration.
  void plug(Slot& slot) {
    slot.device = factories().at(slot.name)(executor_);
    slot.device->set_location(kSimulatedBus, take_address(), slot.port);
    slot.device->on_detach([this, &slot](std::chrono::milliseconds delay) { detach(slot, delay); });
    listener_->device_arrived(slot.device);
  }

  // USB addresses are 1 to 127 and the root hub has 1: the next one from 2 up that no device
  // on the bus holds, wrapping around as the kernel does.
  std::uint8_t take_address() {
    auto in_use = [this](std::uint8_t a) {
      for (const auto& slot : slots_) {
        if (slot->device && slot->device->address() == a) return true;
      }
      return false;
    };
    std::uint8_t a = next_address_;
    while (in_use(a)) a = a >= kMaxAddress ? 2 : static_cast<std::uint8_t>(a + 1);
    next_address_ = a >= kMaxAddress ? 2 : static_cast<std::uint8_t>(a + 1);
    return a;
  }

  void detach(Slot& slot, std::chrono::milliseconds delay) {
    if (stopped_ || !slot.device) return;
    log::info("simulated {} leaves the bus for {} ms", slot.name, delay.count());
    std::shared_ptr<SimDevice> gone = std::move(slot.device);
    gone->unplug();
    listener_->device_left(gone);
    slot.replug.expires_after(delay);
    slot.replug.async_wait([this, &slot](const boost::system::error_code& ec) {
      if (!ec && !stopped_) plug(slot);
    });
  }

  boost::asio::any_io_executor executor_;
  DeviceListener* listener_ = nullptr;
  std::vector<std::unique_ptr<Slot>> slots_;
  std::shared_ptr<SimDevice> root_hub_;
  std::uint8_t next_address_ = 2;  // 1 is the root hub's
  bool stopped_ = false;
};

}  // namespace

std::vector<std::string> device_names() {
  std::vector<std::string> names;
  for (const auto& [name, factory] : factories()) names.push_back(name);
  return names;
}

Expected<std::unique_ptr<Backend>, std::string> make_sim_backend(
    boost::asio::any_io_executor executor, const std::vector<std::string>& names) {
  // One port of the root hub each, and its hub descriptor has room for 7.
  if (names.size() > kRootHubPorts) {
    return Unexpected{
        fmt::format("at most {} simulated devices (the simulated root hub has {} "
                    "ports), not {}",
                    kRootHubPorts, kRootHubPorts, names.size())};
  }
  for (const std::string& name : names) {
    if (!factories().contains(name)) {
      std::string valid;
      for (const std::string& n : device_names()) valid += (valid.empty() ? "" : ", ") + n;
      return Unexpected{"'" + name + "' is not a simulated device (there are: " + valid + ")"};
    }
  }
  return std::unique_ptr<Backend>(std::make_unique<SimBackend>(std::move(executor), names));
}

}  // namespace usbnet::agent::sim
