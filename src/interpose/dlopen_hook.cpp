#include "interpose/dlopen_hook.h"

#include <dlfcn.h>
#include <link.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "common/log.h"
#include "interpose/config.h"
#include "interpose/real_libusb.h"

// The first and one-past-the-last byte of the shim's own image (defined by the linker).
extern "C" const char __ehdr_start[] __attribute__((visibility("hidden")));
extern "C" const char _end[] __attribute__((visibility("hidden")));

namespace usbnet::interpose {

namespace {

// The file every dynamic loader search for the soname ends at on this system (the libdir of
// the libusb the shim was built against).
constexpr const char* kSystemLibusb = USBNET_SYSTEM_LIBUSB;

void* failing_dlopen(const char*, int) { return nullptr; }
void* failing_dlmopen(Lmid_t, const char*, int) { return nullptr; }

// The C library's functions, behind the shim in the search order.
struct Next {
  void* (*dlopen)(const char*, int) = failing_dlopen;
  void* (*dlmopen)(Lmid_t, const char*, int) = failing_dlmopen;
};

const Next& next() {
  static const Next functions = [] {
    Next n;
    if (void* f = ::dlsym(RTLD_NEXT, "dlopen")) n.dlopen = reinterpret_cast<decltype(n.dlopen)>(f);
    if (void* f = ::dlsym(RTLD_NEXT, "dlmopen")) {
      n.dlmopen = reinterpret_cast<decltype(n.dlmopen)>(f);
    }
    return n;
  }();
  return functions;
}

bool inside_the_shim(const void* address) {
  const char* p = static_cast<const char*>(address);
  return p >= __ehdr_start && p < _end;
}

bool is_libusb_name(const char* name) {
  const char* base = std::strrchr(name, '/');
  return std::strncmp(base ? base + 1 : name, "libusb-1.0.so", 13) == 0;
}

bool same_file(const struct stat& a, const char* path) {
  struct stat b;
  return ::stat(path, &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

// Whether `path` (which has a '/') is the file of a libusb-1.0 this process has loaded or the
// system's one: a symlink or another name for the same file is the same library.
bool is_libusb_file(const char* path) {
  struct stat target;
  if (::stat(path, &target) != 0) return false;
  if (same_file(target, kSystemLibusb)) return true;
  const auto loaded_libusb = [](dl_phdr_info* info, std::size_t, void* data) -> int {
    const char* name = info->dlpi_name;
    return name && *name && is_libusb_name(name) &&
           same_file(*static_cast<const struct stat*>(data), name);
  };
  return ::dl_iterate_phdr(loaded_libusb, &target) != 0;
}

// Whether a dlopen() of `file` asks for libusb-1.0: its soname or another of its names, or the
// path of the library's file.
bool names_libusb(const char* file) {
  if (!file || !*file) return false;
  const bool path = std::strchr(file, '/') != nullptr;
  if (!path) return is_libusb_name(file);
  const int saved_errno = errno;  // the program's dlopen() alone decides what errno says
  const bool answer = is_libusb_name(file) ? ::access(file, F_OK) == 0 : is_libusb_file(file);
  errno = saved_errno;
  return answer;
}

// The shim's own name as the dynamic loader knows it (what LD_PRELOAD said), which a dlopen()
// with RTLD_NOLOAD finds among the loaded objects whatever the working directory is now.
const char* shim_name() {
  static const char* const name = [] {
    Dl_info info{};
    link_map* map = nullptr;
    if (::dladdr1(reinterpret_cast<void*>(&usbnet_dlopen_answer), &info,
                  reinterpret_cast<void**>(&map), RTLD_DL_LINKMAP) == 0 ||
        !map) {
      return static_cast<const char*>(nullptr);
    }
    return static_cast<const char*>(map->l_name);
  }();
  return name;
}

// The shim's handle for a request for libusb in the base namespace, or nullptr to let the C
// library's dlopen() load what was asked for.
void* answer_for_libusb(const char* file, int mode) {
  (void)config();  // the log level
  // The real library serves the local devices; load it now, as the program expects.
  (void)real();
  const char* shim = shim_name();
  void* handle = shim ? next().dlopen(shim, mode | RTLD_NOLOAD) : nullptr;
  if (handle) {
    log::debug("dlopen(\"{}\"): libusbnet answers for libusb-1.0", file);
  } else {
    log::warn("dlopen(\"{}\"): cannot give the program libusbnet; it gets the real libusb-1.0",
              file);
  }
  return handle;
}

void* answer_for_libusb_guarded(const char* file, int mode) noexcept {
  try {
    return answer_for_libusb(file, mode);
  } catch (...) {  // out of memory in a log line: the program gets the real library
    return nullptr;
  }
}

}  // namespace

void* load_library(const char* file, int mode) { return next().dlopen(file, mode); }

}  // namespace usbnet::interpose

using namespace usbnet::interpose;

extern "C" UsbnetDlopenAnswer usbnet_dlopen_answer(const char* file, int mode,
                                                   const void* caller) noexcept {
  void* handle = nullptr;
  // The shim's own requests (the real libusb, above all) go straight to the C library.
  if (!inside_the_shim(caller) && names_libusb(file)) {
    handle = answer_for_libusb_guarded(file, mode);
  }
  return {handle, reinterpret_cast<void*>(next().dlopen)};
}

extern "C" UsbnetDlopenAnswer usbnet_dlmopen_answer(Lmid_t namespace_id, const char* file, int mode,
                                                    const void* caller) noexcept {
  void* handle = nullptr;
  // Only the base namespace has the shim (glibc preloads nothing into a new one): a libusb
  // loaded into another namespace is the real library on its own.
  if (namespace_id == LM_ID_BASE && !inside_the_shim(caller) && names_libusb(file)) {
    handle = answer_for_libusb_guarded(file, mode);
  }
  return {handle, reinterpret_cast<void*>(next().dlmopen)};
}
