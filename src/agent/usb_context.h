// libusb contexts as the real backend uses them: a context whose events the io thread handles
// (usb_event_pump.h), and device references that keep their context alive.
//
// The backend has one long-lived context, and (on machines where libusb's device list never
// changes, see usb_rescan.h) devices that arrived later belong to the context of the
// enumeration that found them. Whoever holds a device or a handle of a context holds the
// context, so it ends only when nothing of it is in use.
#pragma once

#include <libusb.h>

#include <boost/asio/any_io_executor.hpp>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "agent/device_presence.h"
#include "usbnet/expected.h"

namespace usbnet::agent {

class UsbEventPump;

class UsbContext {
 public:
  // libusb_init; fails with a sentence.
  static Expected<std::shared_ptr<UsbContext>, std::string> create();
  explicit UsbContext(libusb_context* ctx) : ctx_(ctx) {}
  // Stops handling its events (if it did) and exits the context.
  ~UsbContext();
  UsbContext(const UsbContext&) = delete;
  UsbContext& operator=(const UsbContext&) = delete;

  libusb_context* get() const { return ctx_; }
  // From now on the io thread behind `io` handles this context's events (call it on that
  // thread; once: later calls do nothing). A context that only enumerates never needs it.
  void handle_events(const boost::asio::any_io_executor& io);

 private:
  libusb_context* ctx_;
  std::once_flag started_;
  std::shared_ptr<UsbEventPump> events_;
};
using UsbContextPtr = std::shared_ptr<UsbContext>;

// A counted reference to a libusb device and the context it belongs to.
class UsbDeviceRef {
 public:
  UsbDeviceRef(UsbContextPtr context, libusb_device* device);  // takes a new reference
  UsbDeviceRef(const UsbDeviceRef& other) : UsbDeviceRef(other.context_, other.get()) {}
  UsbDeviceRef(UsbDeviceRef&&) noexcept = default;
  UsbDeviceRef& operator=(UsbDeviceRef other) noexcept {
    std::swap(context_, other.context_);
    std::swap(device_, other.device_);
    return *this;
  }
  ~UsbDeviceRef() = default;

  libusb_device* get() const { return device_.get(); }
  const UsbContextPtr& context() const { return context_; }

 private:
  struct Unref {
    void operator()(libusb_device* d) const { libusb_unref_device(d); }
  };
  UsbContextPtr context_;  // declared first: outlives the reference below
  std::unique_ptr<libusb_device, Unref> device_;
};

// libusb_get_device_list as a vector of references; empty if libusb fails (logged).
std::vector<UsbDeviceRef> list_devices(const UsbContextPtr& context);

// Where the device is plugged and its address (libusb reads these from its cached record, so
// this works for a device that has just left too).
UsbIdentity identify(libusb_device* device);

}  // namespace usbnet::agent
