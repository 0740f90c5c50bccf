// dlopen() and dlmopen() of the shim. A program that loads libusb-1.0 at run time (pyusb,
// python-libusb1, cffi bindings, plug-ins) and looks its functions up with dlsym() on the handle
// would find the real library's functions, not the shim's. So when a request names libusb-1.0
// the shim makes sure the real library is loaded (for local devices) and answers with a handle
// of the shim itself, on which the C library's own dlsym() finds the shim's libusb_* functions.
// Every other request goes to the C library's function unchanged, entered as if the program had
// called it (dlopen_entry.cpp): glibc picks the namespace and the RPATH/RUNPATH/$ORIGIN search
// of the object its return address lies in.
#pragma once

#include <dlfcn.h>

extern "C" {

// What an entry point does with one call: return `handle` if it is not null, else continue in
// `next` (the C library's function) with the caller's arguments and return address.
struct UsbnetDlopenAnswer {
  void* handle;
  void* next;
};

// `caller` is the return address of the program's call.
UsbnetDlopenAnswer usbnet_dlopen_answer(const char* file, int mode, const void* caller) noexcept;
UsbnetDlopenAnswer usbnet_dlmopen_answer(Lmid_t namespace_id, const char* file, int mode,
                                         const void* caller) noexcept;
}

namespace usbnet::interpose {

// The C library's dlopen(), for the shim's own loads (the real libusb). Not ::dlopen: that name
// binds to the first definition in the process's search order, which may be another preloaded
// interposer's (ThreadSanitizer's, say) that passes the request on to the shim's entry as if
// the program had made it, and the shim would then answer a request for the real libusb with
// itself.
void* load_library(const char* file, int mode);

}  // namespace usbnet::interpose
