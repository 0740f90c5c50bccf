// Raw USB descriptors into libusb's public structs, exactly as libusb 1.0.26 builds them for a
// local device on Linux: the same fields, the same `extra` bytes (the class- and
// vendor-specific descriptors that follow a configuration, interface or endpoint descriptor),
// the same tolerance of odd descriptors and the same errors. Programs free the results with
// libusb's free functions, which the shim routes here.
//
// This is the one place where the project allocates with malloc: the structs belong to a C API
// whose free functions release each array on its own.
#pragma once

#include <libusb.h>

#include <cstdint>
#include <span>

#include "usbnet/expected.h"

namespace usbnet::interpose {

using RawDescriptor = std::span<const std::uint8_t>;

// The 18-byte device descriptor, fields converted from little-endian.
libusb_device_descriptor parse_device_descriptor(std::span<const std::uint8_t, 18> raw);

// A configuration descriptor with everything after it. `raw` is what libusb would read from the
// kernel's cache: callers pass min(wTotalLength, cached length) bytes for lookups by index or
// for the active configuration, and the whole cached length for a lookup by value (as libusb's
// Linux backend does). Errors: LIBUSB_ERROR_IO for a malformed descriptor, NO_MEM.
Expected<libusb_config_descriptor*, int> parse_config_descriptor(RawDescriptor raw);
void free_config_descriptor(libusb_config_descriptor* config);

// A BOS descriptor with its device capabilities.
Expected<libusb_bos_descriptor*, int> parse_bos_descriptor(RawDescriptor raw);
void free_bos_descriptor(libusb_bos_descriptor* bos);

}  // namespace usbnet::interpose
