// Real USB devices through libusb: enumeration with hotplug, raw descriptors, device requests
// and asynchronous transfers.
//
// Arrivals and departures come from libusb's hotplug callback when libusb has one that works,
// and from a fresh enumeration every `rescan_interval` in any case, which catches what libusb
// did not report (Debian's libusb hears of changes only from udevd: see usb_rescan.h). Each
// change is reported once. A departed device's transfers end with NO_DEVICE (libusb ends them
// when it sees the device gone; the session refuses later ones).
//
// Threads: libusb's events are handled on the agent's io thread (usb_event_pump.h), so that a
// transfer's completion goes out from where libusb reports it; blocking device requests (set
// configuration, claim, reset, close, ...) run on a worker thread, one request at a time, so a
// slow device never stalls the io thread. Every result is posted to the io thread.
// Hubs are not exported: the kernel drives them.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <chrono>
#include <memory>
#include <string>

#include "agent/device.h"
#include "usbnet/expected.h"

namespace usbnet::agent {

struct LibusbOptions {
  // How often to enumerate the devices; 0: never (then only libusb's hotplug reports changes).
  std::chrono::milliseconds rescan_interval{1000};
};

// Fails (with a sentence) when libusb cannot be initialized on this machine.
Expected<std::unique_ptr<Backend>, std::string> make_libusb_backend(boost::asio::any_io_executor io,
                                                                    LibusbOptions options = {});

}  // namespace usbnet::agent
