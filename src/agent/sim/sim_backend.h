// The backend of simulated devices, chosen by name with --simulate.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <memory>
#include <string>
#include <vector>

#include "agent/device.h"
#include "usbnet/expected.h"

namespace usbnet::agent::sim {

// The names --simulate takes, in alphabetical order: "audio", "dfu", "ftdi", ...
std::vector<std::string> device_names();

// A backend with one device per name (a name may repeat). An unknown name is an error that
// lists the valid ones.
Expected<std::unique_ptr<Backend>, std::string> make_sim_backend(
    boost::asio::any_io_executor executor, const std::vector<std::string>& names);

}  // namespace usbnet::agent::sim
