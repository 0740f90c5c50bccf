// The real libusb, found behind the shim with dlsym(RTLD_NEXT) (or loaded, if the program did
// not link it). Local devices and everything the shim does not handle itself go there.
#pragma once

#include <libusb.h>

#include "interpose/libusb_functions.h"

namespace usbnet::interpose {

struct RealLibusb {
#define USBNET_REAL_POINTER(name) decltype(&::name) name = nullptr;
  USBNET_FOR_EACH_LIBUSB_FUNCTION(USBNET_REAL_POINTER)
#undef USBNET_REAL_POINTER
  bool available = false;  // every function was found
};

// Resolved on first use; thread-safe.
const RealLibusb& real();

}  // namespace usbnet::interpose
