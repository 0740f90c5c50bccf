// Helpers shared by the lab's programs. Plain libusb and the standard library: like the
// examples, these programs know nothing of usbnet and run the same on a local device (inside
// the lab's guest) or, under LD_PRELOAD, on a remote one.
#pragma once

#include <libusb.h>
#include <sys/resource.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <optional>
#include <string>

#include "example_util.h"

namespace lab {

// The examples' helpers: checked calls, RAII contexts and handles, CRC-32.
using example::check;
using example::Context;
using example::crc32;
using example::Handle;
using example::init;

[[noreturn]] inline void fail(const std::string& message) {
  std::fprintf(stderr, "%s\n", message.c_str());
  std::exit(1);
}

struct ConfigDeleter {
  void operator()(libusb_config_descriptor* c) const { libusb_free_config_descriptor(c); }
};
using Config = std::unique_ptr<libusb_config_descriptor, ConfigDeleter>;

// "46f4:0001" -> vid, pid; exits on anything else.
inline void parse_vid_pid(const char* text, std::uint16_t& vid, std::uint16_t& pid) {
  if (!example::parse_vid_pid(text, vid, pid)) fail(std::string("not a VID:PID in hex: ") + text);
}

// One interface of an opened device, with its first endpoints of each direction and type.
struct Interface {
  Interface() = default;
  Interface(Interface&&) = default;
  Interface& operator=(Interface&&) = default;
  // Releasing gives the interface back to its kernel driver (auto detach attaches it again).
  ~Interface() {
    if (handle && number >= 0) libusb_release_interface(handle.get(), number);
  }

  Handle handle;
  int number = -1;
  const libusb_interface_descriptor* descriptor = nullptr;  // valid while `config` lives
  Config config;
  std::uint8_t bulk_in = 0, bulk_out = 0, interrupt_in = 0;
  std::uint16_t interrupt_in_size = 0;
};

// Opens the first device with this VID:PID (on this bus, unless -1) that has an interface of
// this class (any class if -1) and protocol (any if -1), claims that interface with the kernel
// driver detached for the time of the claim, and finds its endpoints. Exits with a message when
// there is none.
inline Interface open_interface(libusb_context* ctx, std::uint16_t vid, std::uint16_t pid,
                                int interface_class, int protocol = -1, int bus = -1) {
  libusb_device** list = nullptr;
  const ssize_t n = check(static_cast<int>(libusb_get_device_list(ctx, &list)), "device list");
  Interface found;
  for (ssize_t i = 0; i < n && found.number < 0; ++i) {
    libusb_device_descriptor d{};
    if (libusb_get_device_descriptor(list[i], &d) != 0 || d.idVendor != vid || d.idProduct != pid ||
        (bus >= 0 && libusb_get_bus_number(list[i]) != bus)) {
      continue;
    }
    libusb_config_descriptor* raw = nullptr;
    if (libusb_get_active_config_descriptor(list[i], &raw) != 0) continue;
    Config config(raw);
    for (int k = 0; k < raw->bNumInterfaces && found.number < 0; ++k) {
      const libusb_interface_descriptor& alt = raw->interface[k].altsetting[0];
      if ((interface_class >= 0 && alt.bInterfaceClass != interface_class) ||
          (protocol >= 0 && alt.bInterfaceProtocol != protocol)) {
        continue;
      }
      libusb_device_handle* h = nullptr;
      check(libusb_open(list[i], &h), "libusb_open");
      found.handle.reset(h);
      found.number = alt.bInterfaceNumber;
      found.descriptor = &alt;
      for (int e = 0; e < alt.bNumEndpoints; ++e) {
        const libusb_endpoint_descriptor& ep = alt.endpoint[e];
        const int type = ep.bmAttributes & LIBUSB_TRANSFER_TYPE_MASK;
        const bool in = (ep.bEndpointAddress & LIBUSB_ENDPOINT_IN) != 0;
        if (type == LIBUSB_TRANSFER_TYPE_BULK && in && !found.bulk_in) {
          found.bulk_in = ep.bEndpointAddress;
        } else if (type == LIBUSB_TRANSFER_TYPE_BULK && !in && !found.bulk_out) {
          found.bulk_out = ep.bEndpointAddress;
        } else if (type == LIBUSB_TRANSFER_TYPE_INTERRUPT && in && !found.interrupt_in) {
          found.interrupt_in = ep.bEndpointAddress;
          found.interrupt_in_size = ep.wMaxPacketSize;
        }
      }
      found.config = std::move(config);
    }
  }
  libusb_free_device_list(list, 1);
  if (found.number < 0) {
    char text[96];
    std::snprintf(text, sizeof text, "no device %04x:%04x with an interface of class %d", vid, pid,
                  interface_class);
    fail(text);
  }
  // A kernel driver (usb-storage, usbhid) may hold the interface: libusb detaches it for the
  // time of the claim and attaches it again on release.
  check(libusb_set_auto_detach_kernel_driver(found.handle.get(), 1), "auto detach");
  check(libusb_claim_interface(found.handle.get(), found.number), "claim interface");
  return found;
}

inline double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

// The CPU time this process (all its threads) has used so far, user and system, in seconds:
// the lab's benchmark charges it to the path the program measured.
struct CpuTime {
  double user = 0, system = 0;

  static CpuTime now() {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    const auto seconds = [](const timeval& t) {
      return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6;
    };
    return {seconds(u.ru_utime), seconds(u.ru_stime)};
  }
  // "cpu: user U s, system S s" for the time since `start`.
  static void print_since(const CpuTime& start) {
    const CpuTime end = now();
    std::printf("cpu: user %.3f s, system %.3f s\n", end.user - start.user,
                end.system - start.system);
  }
};

}  // namespace lab
