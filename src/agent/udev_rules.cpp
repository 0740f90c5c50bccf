#include "agent/udev_rules.h"

#include <fmt/format.h>

namespace usbnet::agent {

std::string udev_rules(const DeviceFilter& exports, const std::string& group) {
  std::string out = fmt::format(
      "# Written by usbnet-agent --write-udev-rules from its export list ({}):\n"
      "# the group {} may open the exported devices (hubs excepted).\n",
      exports.to_string(), group);
  for (const DeviceFilter::Rule& rule : exports.rules()) {
    std::string match = R"(ACTION!="remove", SUBSYSTEM=="usb", ENV{DEVTYPE}=="usb_device", )"
                        R"(ATTR{bDeviceClass}!="09")";
    if (rule.vendor) match += fmt::format(R"(, ATTR{{idVendor}}=="{:04x}")", *rule.vendor);
    if (rule.product) match += fmt::format(R"(, ATTR{{idProduct}}=="{:04x}")", *rule.product);
    out += fmt::format(R"({}, GROUP="{}", MODE="0664")"
                       "\n",
                       match, group);
  }
  return out;
}

}  // namespace usbnet::agent
