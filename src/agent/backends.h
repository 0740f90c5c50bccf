// The device backends the agent runs: simulated devices by name, and real USB devices.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "agent/device.h"
#include "agent/libusb_backend.h"
#include "usbnet/expected.h"

namespace usbnet::agent {

// "audio, dfu, ftdi, loopback, ...": for --help.
std::string simulated_device_names();

// The simulated devices named in `simulate` (an unknown name is an error naming the valid
// ones), and the real USB backend if `real_usb` is set (when libusb cannot start, a warning is
// logged and the agent goes on without it).
Expected<std::vector<std::unique_ptr<Backend>>, std::string> make_backends(
    boost::asio::any_io_executor executor, const std::vector<std::string>& simulate,
    const std::optional<LibusbOptions>& real_usb);

}  // namespace usbnet::agent
