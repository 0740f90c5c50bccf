#include "common/topology.h"

#include <algorithm>

namespace usbnet::topology {

namespace {
constexpr std::uint8_t kClassHub = 9;
}  // namespace

bool is_hub(const wire::DeviceInfo& info) { return info.device_descriptor[4] == kClassHub; }

bool is_parent_of(const wire::DeviceInfo& parent, const wire::DeviceInfo& child) {
  if (parent.bus_number != child.bus_number || !is_hub(parent)) return false;
  if (child.port_numbers.size() != parent.port_numbers.size() + 1) return false;
  return std::equal(parent.port_numbers.begin(), parent.port_numbers.end(),
                    child.port_numbers.begin());
}

std::uint16_t vendor_id(const wire::DeviceInfo& info) {
  return static_cast<std::uint16_t>(info.device_descriptor[8] | (info.device_descriptor[9] << 8));
}

std::uint16_t product_id(const wire::DeviceInfo& info) {
  return static_cast<std::uint16_t>(info.device_descriptor[10] | (info.device_descriptor[11] << 8));
}

}  // namespace usbnet::topology
