// A plain libusb program that streams numbered messages through the loopback device (out on
// 0x01, back on 0x81) with short timeouts, as a program that keeps going after a timeout does:
// a TIMED_OUT write is simply not counted, and the next message goes. Every echo is compared
// with the message it answers. It prints "streaming" once the stream runs, one line per failed
// call, and a summary; it stops at the first NO_DEVICE, after `seconds`, or after 200 failures.
//
//   echo_stream SECONDS TIMEOUT_MS
#include <libusb.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "common/loopback_device.h"

namespace loopback_device = usbnet::loopback_device;

int main(int argc, char** argv) {
  if (argc != 3) return 2;
  const int seconds = std::atoi(argv[1]);
  const unsigned timeout = static_cast<unsigned>(std::atoi(argv[2]));
  libusb_context* ctx = nullptr;
  if (libusb_init(&ctx) != 0) return 100;
  libusb_device_handle* h =
      libusb_open_device_with_vid_pid(ctx, loopback_device::kVendorId, loopback_device::kProductId);
  if (!h || libusb_claim_interface(h, 0) != 0) return 101;
  int sent = 0, echoed = 0, wrong = 0, failures = 0;
  bool lost = false;
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  for (int n = 0; std::chrono::steady_clock::now() < end && failures < 200 && !lost; ++n) {
    char message[32];
    const int length = std::snprintf(message, sizeof message, "message %08d", n);
    int moved = 0;
    int r = libusb_bulk_transfer(h, 0x01, reinterpret_cast<unsigned char*>(message), length, &moved,
                                 timeout);
    if (r != 0) {
      std::printf("write %d: %s after %d bytes\n", n, libusb_error_name(r), moved);
      ++failures;
      lost = r == LIBUSB_ERROR_NO_DEVICE;
      continue;
    }
    ++sent;
    char echo[64] = {};
    r = libusb_bulk_transfer(h, 0x81, reinterpret_cast<unsigned char*>(echo), sizeof echo, &moved,
                             timeout);
    if (r != 0) {
      std::printf("read %d: %s after %d bytes\n", n, libusb_error_name(r), moved);
      ++failures;
      lost = r == LIBUSB_ERROR_NO_DEVICE;
      continue;
    }
    ++echoed;
    if (moved != length || std::memcmp(echo, message, static_cast<std::size_t>(length)) != 0) {
      if (wrong++ < 5) {
        std::printf("wrong echo for %d: '%.*s'\n", n, moved, echo);
      }
    }
    if (n == 20) {
      std::printf("streaming\n");
      std::fflush(stdout);
    }
  }
  std::printf("sent %d echoed %d wrong %d failures %d\n", sent, echoed, wrong, failures);
  if (lost) {
    // The handle is dead: a later call fails at once instead of going on with a shifted stream.
    unsigned char byte = 0;
    int moved = 0;
    const int r = libusb_bulk_transfer(h, 0x01, &byte, 1, &moved, timeout);
    std::printf("after the loss: %s\n", libusb_error_name(r));
  }
  std::fflush(stdout);
  libusb_close(h);
  libusb_exit(ctx);
  return 0;
}
