// What the kernel says is plugged in, cheaply: the USB devices under /sys/bus/usb/devices (each
// entry's name, the bus and port path, with its address, devnum). A rescan round compares it with
// the last round's before paying for a fresh libusb context: on a small board under emulation
// that costs a fifth of the CPU every second (hundreds of sysfs files, threads, udev), and the
// answer is almost always "nothing changed". A device that leaves or arrives changes an entry or
// an address (a device plugged in again gets a new one), so an equal listing means libusb would
// find the same devices.
#pragma once

#include <optional>
#include <string>

namespace usbnet::agent {

// "1-2:5 usb1:1 ..." in name order, interfaces left out; nullopt when the directory cannot be
// read (no sysfs: then every round enumerates).
std::optional<std::string> usb_sysfs_listing(const std::string& directory = "/sys/bus/usb/devices");

}  // namespace usbnet::agent
