// Real USB devices through libusb: enumeration with hotplug, raw descriptors, device requests
// and asynchronous transfers.
//
// Threads: libusb's events are handled on a thread of this backend; blocking device requests
// (set configuration, claim, reset, ...) run on a worker thread, one request at a time, so a
// slow device never stalls the agent's io thread. Every result is posted to the io thread.
// Hubs are not exported: the kernel drives them.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <memory>
#include <string>

#include "agent/device.h"
#include "usbnet/expected.h"

namespace usbnet::agent {

// Fails (with a sentence) when libusb cannot be initialized on this machine.
Expected<std::unique_ptr<Backend>, std::string> make_libusb_backend(
    boost::asio::any_io_executor io);

}  // namespace usbnet::agent
