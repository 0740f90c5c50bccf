// Periodic enumeration of the machine's USB devices, for the changes libusb's hotplug does not
// report.
//
// Debian's libusb learns about arrivals and departures only from udevd: on a machine or in a
// container without udevd, its hotplug callbacks stay silent, and libusb_get_device_list on an
// existing context keeps returning the devices present when the context was created (with
// hotplug support, libusb lists its own record instead of scanning). A new context scans the
// system when it is created, so each round enumerates with a fresh context. A device it finds
// that the long-lived context also has is handed out from the long-lived one; a device only the
// fresh context has keeps that context alive for as long as the device is in use. A round whose
// sysfs listing (usb_sysfs_listing.h) is the last full round's skips the fresh context and
// reports what that round found.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "agent/device_presence.h"
#include "agent/usb_context.h"

namespace usbnet::agent {

// What one round found: every device present, when the round started.
struct Enumeration {
  DevicePresence::Clock::time_point started;
  std::vector<std::pair<UsbIdentity, UsbDeviceRef>> devices;
};

class UsbRescanner {
 public:
  // Called on the rescanner's thread after every round.
  using Found = std::function<void(std::shared_ptr<const Enumeration>)>;

  // The first round runs at once, then one every `interval`.
  UsbRescanner(UsbContextPtr primary, std::chrono::milliseconds interval, Found found);
  // Stops; waits for a round in progress (milliseconds).
  ~UsbRescanner();
  UsbRescanner(const UsbRescanner&) = delete;
  UsbRescanner& operator=(const UsbRescanner&) = delete;

 private:
  void run();
  std::shared_ptr<const Enumeration> enumerate();

  UsbContextPtr primary_;
  const std::chrono::milliseconds interval_;
  Found found_;
  bool warned_ = false;  // about a failing libusb_init, once
  // The last full enumeration and the sysfs listing taken before it (rescanner thread only).
  std::shared_ptr<Enumeration> last_;
  std::optional<std::string> last_listing_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::thread thread_;  // last: starts after everything above is ready
};

}  // namespace usbnet::agent
