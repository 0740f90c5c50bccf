// usbnet-agent --write-udev-rules FILE: udev rules that let the agent's group open exactly the
// devices its export list names, so that the service runs without root. Written by the
// service before the agent starts (into /run/udev/rules.d), from the same configuration.
#pragma once

#include <string>

#include "common/device_filter.h"

namespace usbnet::agent {

// One rule per export pattern: the device nodes of matching USB devices (hubs excepted: the
// agent never opens a hub) get `group` with read-write access; others keep reading them.
std::string udev_rules(const DeviceFilter& exports, const std::string& group);

}  // namespace usbnet::agent
