// The agent's device backend interface: what a device (real, through libusb, or simulated) must
// do for the sessions that use it. The session layer above enforces export policy and
// interface ownership across clients; a backend only drives its device.
//
// Threading: everything here is called on the agent's io thread (the one running the
// io_context), and every callback a backend makes (`done`) must also run on that thread,
// exactly once. A backend that waits on hardware does so on threads of its own and posts the
// result back.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <variant>
#include <vector>

#include "usbnet/expected.h"
#include "usbnet/messages.h"

namespace usbnet::agent {

// Transfer buffers are overwritten by the network or the device: growing one does not zero it.
template <typename T>
struct UninitializedAllocator : std::allocator<T> {
  template <typename U>
  struct rebind {
    using other = UninitializedAllocator<U>;
  };
  using std::allocator<T>::allocator;
  template <typename U>
  void construct(U* p) noexcept {
    ::new (static_cast<void*>(p)) U;
  }
  template <typename U, typename... Args>
  void construct(U* p, Args&&... args) {
    ::new (static_cast<void*>(p)) U(std::forward<Args>(args)...);
  }
};
using TransferBuffer = std::vector<std::uint8_t, UninitializedAllocator<std::uint8_t>>;

// One transfer as the device runs it.
struct Transfer {
  std::uint32_t trans_id = 0;
  wire::UrbType type = wire::UrbType::Bulk;
  std::uint8_t endpoint = 0;
  std::uint32_t flags = 0;  // wire::kFlag* (SHORT_NOT_OK, ADD_ZERO_PACKET matter here)
  std::array<std::uint8_t, wire::kSetupLength> setup{};  // control only
  std::uint32_t timeout_ms = 0;                          // 0 = none
  // OUT: the data to send. IN: sized to the length requested; the device fills the front.
  // For control transfers this is the data stage only (the setup packet is `setup`).
  // For isochronous transfers the packets lie back to back at their requested lengths.
  TransferBuffer buffer;
  std::vector<std::uint32_t> iso_lengths;  // requested length of each packet

  // Results, set by the backend before `done`.
  wire::UrbStatus status = wire::UrbStatus::Completed;
  std::uint32_t actual_length = 0;
  // IN, non-isochronous: a backend may answer with bytes it already holds instead of copying
  // them into `buffer` (a simulated source serving a constant pattern, as a device's DMA would
  // fill the buffer without the agent copying anything). When set, the first actual_length
  // bytes are the data; they must outlive the transfer object.
  wire::ByteView in_data;
  std::vector<wire::IsoPacketResult> iso_results;  // one per packet, for isochronous

  bool is_in() const {
    return type == wire::UrbType::Control ? (setup[0] & 0x80) != 0 : (endpoint & 0x80) != 0;
  }
};
using TransferPtr = std::shared_ptr<Transfer>;
using TransferDone = std::function<void(const TransferPtr&)>;

// The device requests a handle serves; the wire messages themselves (their id and handle
// fields are the session's business and are ignored by backends).
using DeviceRequest =
    std::variant<wire::SetConfiguration, wire::GetConfiguration, wire::ClaimInterface,
                 wire::ReleaseInterface, wire::SetAltSetting, wire::ClearHalt, wire::ResetDevice,
                 wire::KernelDriver>;
// `result` is 0 or a libusb error code (wire::error_code); `value` is the reply value
// (GET_CONFIGURATION: the bConfigurationValue; KERNEL_DRIVER query: 1 if a driver is bound).
using RequestDone = std::function<void(std::int32_t result, std::uint32_t value)>;

// One open of a device by one client session.
class DeviceHandle {
 public:
  virtual ~DeviceHandle() = default;

  virtual void request(const DeviceRequest& request, RequestDone done) = 0;
  // Starts a transfer. Transfers on one endpoint complete in the order they were submitted.
  // A transfer with a timeout that has not completed by then ends with TimedOut and whatever
  // was transferred so far.
  virtual void submit(TransferPtr transfer, TransferDone done) = 0;
  // Ends a transfer early with Cancelled (or its natural status if it was already ending).
  // No effect on a transfer that is not in flight.
  virtual void cancel(const TransferPtr& transfer) = 0;
  // Cancels every transfer in flight and releases what this handle claimed; `done` runs when
  // every transfer's own `done` has run. The handle is destroyed after that.
  virtual void close(std::function<void()> done) = 0;
};

// A device a backend offers.
class Device {
 public:
  virtual ~Device() = default;
  // The device record without device_id and parent_id, which the agent assigns.
  virtual wire::DeviceInfo info() const = 0;
  // Opens a handle; fails with a libusb error code (ACCESS, NO_DEVICE, ...).
  virtual Expected<std::unique_ptr<DeviceHandle>, std::int32_t> open() = 0;
};
using DevicePtr = std::shared_ptr<Device>;

// What a backend tells the agent about devices coming and going.
class DeviceListener {
 public:
  virtual ~DeviceListener() = default;
  virtual void device_arrived(const DevicePtr& device) = 0;
  // Called after the device's handles have been told (their transfers end with NoDevice).
  virtual void device_left(const DevicePtr& device) = 0;
};

class Backend {
 public:
  virtual ~Backend() = default;
  // Reports every present device through `listener.device_arrived`, then later arrivals and
  // departures, until stop().
  virtual void start(DeviceListener& listener) = 0;
  // Stops reporting; cancels and closes everything still open.
  virtual void stop() = 0;
};

}  // namespace usbnet::agent
