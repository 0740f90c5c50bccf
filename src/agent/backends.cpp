#include "agent/backends.h"

#include "agent/sim/sim_backend.h"
#include "common/log.h"

namespace usbnet::agent {

std::string simulated_device_names() {
  std::string names;
  for (const std::string& n : sim::device_names()) names += (names.empty() ? "" : ", ") + n;
  return names;
}

Expected<std::vector<std::unique_ptr<Backend>>, std::string> make_backends(
    boost::asio::any_io_executor executor, const std::vector<std::string>& simulate,
    const std::optional<LibusbOptions>& real_usb) {
  std::vector<std::unique_ptr<Backend>> backends;
  if (!simulate.empty()) {
    auto sim = sim::make_sim_backend(executor, simulate);
    if (!sim) return Unexpected{sim.error()};
    backends.push_back(std::move(*sim));
  }
  if (real_usb) {
    if (auto usb = make_libusb_backend(executor, *real_usb)) {
      backends.push_back(std::move(*usb));
    } else {
      log::warn("{}; real USB devices are not exported", usb.error());
    }
  }
  return backends;
}

}  // namespace usbnet::agent
