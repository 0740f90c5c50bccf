// The device record of a real USB device: where it is, and its raw descriptors.
#pragma once

#include <libusb.h>

#include "usbnet/messages.h"

namespace usbnet::agent {

// Reads the raw device and configuration descriptors as the kernel cached them (sysfs, as
// libusb does), and, by opening the device briefly, its BOS descriptor and the strings of the
// device descriptor. What cannot be read is left out (and logged). Blocks: call it off the io
// thread.
wire::DeviceInfo read_device_info(libusb_device* device);

}  // namespace usbnet::agent
