// The simulated devices of docs/DEVICES.md.
#pragma once

#include <memory>

#include "agent/sim/sim_device.h"

namespace usbnet::agent::sim {

std::shared_ptr<SimDevice> make_loopback(boost::asio::any_io_executor executor);
std::shared_ptr<SimDevice> make_loopback3(boost::asio::any_io_executor executor);
std::shared_ptr<SimDevice> make_mouse(boost::asio::any_io_executor executor);
std::shared_ptr<SimDevice> make_audio(boost::asio::any_io_executor executor);
std::shared_ptr<SimDevice> make_dfu(boost::asio::any_io_executor executor);
std::shared_ptr<SimDevice> make_usbtmc(boost::asio::any_io_executor executor);
std::shared_ptr<SimDevice> make_ftdi(boost::asio::any_io_executor executor);
// The hub the others hang from, with `ports` downstream ports (at most 7).
std::shared_ptr<SimDevice> make_root_hub(boost::asio::any_io_executor executor, std::uint8_t ports);

}  // namespace usbnet::agent::sim
