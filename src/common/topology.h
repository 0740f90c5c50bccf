// Where a device sits in its USB tree, from its device record: which records are hubs and which
// hub a device hangs from (the same bus, and the hub's port path plus one port), as the kernel
// and libusb's Linux backend derive it, and a record's VID:PID. The agent fills parent_id with
// it; the shim and usbnet list read records with it.
#pragma once

#include <cstdint>

#include "usbnet/messages.h"

namespace usbnet::topology {

// bDeviceClass 9: a hub (root hubs included).
bool is_hub(const wire::DeviceInfo& info);
// A root hub: the top of its bus, with an empty port path.
inline bool is_root(const wire::DeviceInfo& info) { return info.port_numbers.empty(); }
// True if `child` hangs from port N of the hub `parent`: same bus, and the child's port path is
// the parent's with one more port.
bool is_parent_of(const wire::DeviceInfo& parent, const wire::DeviceInfo& child);
std::uint16_t vendor_id(const wire::DeviceInfo& info);
std::uint16_t product_id(const wire::DeviceInfo& info);

}  // namespace usbnet::topology
