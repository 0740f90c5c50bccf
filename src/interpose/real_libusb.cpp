#include "interpose/real_libusb.h"

#include <dlfcn.h>

#include <mutex>

#include "common/log.h"
#include "interpose/dlopen_hook.h"

namespace usbnet::interpose {

namespace {

void* find(void* library, const char* name) {
  if (void* next = ::dlsym(RTLD_NEXT, name)) return next;
  return library ? ::dlsym(library, name) : nullptr;
}

RealLibusb resolve() {
  RealLibusb r;
  // A program that does not link libusb itself (it may dlopen it later, or the shim was
  // preloaded into a process that never uses it) still gets a working library.
  void* library = nullptr;
  if (!::dlsym(RTLD_NEXT, "libusb_init")) {
    library = load_library("libusb-1.0.so.0", RTLD_NOW | RTLD_LOCAL);
  }
  bool all = true;
#define USBNET_RESOLVE(name)                                          \
  r.name = reinterpret_cast<decltype(&::name)>(find(library, #name)); \
  if (!r.name) {                                                      \
    all = false;                                                      \
    log::debug("the real libusb has no {}", #name);                   \
  }
  USBNET_FOR_EACH_LIBUSB_FUNCTION(USBNET_RESOLVE)
#undef USBNET_RESOLVE
  r.available = all;
  if (!all) log::warn("the real libusb-1.0 was not found; only remote devices are available");
  return r;
}

}  // namespace

const RealLibusb& real() {
  static const RealLibusb table = resolve();
  return table;
}

}  // namespace usbnet::interpose
