// Small helpers shared by the examples. Plain libusb and the standard library: these programs
// know nothing of usbnet and run the same on a local device or, under LD_PRELOAD, a remote one.
#pragma once

#include <libusb.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

namespace example {

// Ends the program with a message when a libusb call fails.
inline int check(int r, const char* what) {
  if (r < 0) {
    std::fprintf(stderr, "%s: %s\n", what, libusb_error_name(r));
    std::exit(1);
  }
  return r;
}

struct ContextDeleter {
  void operator()(libusb_context* ctx) const { libusb_exit(ctx); }
};
using Context = std::unique_ptr<libusb_context, ContextDeleter>;

inline Context init() {
  libusb_context* ctx = nullptr;
  check(libusb_init(&ctx), "libusb_init");
  return Context(ctx);
}

struct HandleCloser {
  void operator()(libusb_device_handle* h) const { libusb_close(h); }
};
using Handle = std::unique_ptr<libusb_device_handle, HandleCloser>;

// Opens the first device with this VID:PID, or exits with a message.
inline Handle open(libusb_context* ctx, std::uint16_t vid, std::uint16_t pid) {
  libusb_device_handle* h = libusb_open_device_with_vid_pid(ctx, vid, pid);
  if (!h) {
    std::fprintf(stderr, "no device %04x:%04x found (or it cannot be opened)\n", vid, pid);
    std::exit(1);
  }
  return Handle(h);
}

// "1209:0001" -> vid, pid.
inline bool parse_vid_pid(const char* text, std::uint16_t& vid, std::uint16_t& pid) {
  unsigned v, p;
  char extra;
  if (std::sscanf(text, "%4x:%4x%c", &v, &p, &extra) != 2) return false;
  vid = static_cast<std::uint16_t>(v);
  pid = static_cast<std::uint16_t>(p);
  return true;
}

// CRC-32 (IEEE 802.3), to compare what was sent with what came back.
inline std::uint32_t crc32(const unsigned char* data, std::size_t n, std::uint32_t crc = 0) {
  crc = ~crc;
  for (std::size_t i = 0; i < n; ++i) {
    crc ^= data[i];
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1)));
  }
  return ~crc;
}

// The simulated loopback device's stream pattern: byte n is n % 251. (The project writes it, with
// the device's IDs, in src/common/loopback_device.h; the examples repeat it here so that they
// stay standalone libusb programs that include nothing of usbnet.)
inline void fill_pattern(unsigned char* data, std::size_t n, std::uint64_t offset) {
  for (std::size_t i = 0; i < n; ++i) data[i] = static_cast<unsigned char>((offset + i) % 251);
}

}  // namespace example
