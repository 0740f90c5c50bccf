// A plain libusb program that waits on the loopback device's empty IN endpoint with a given
// timeout (ms, 0: none), and prints what the wait ended with. Used to kill the agent under it.
#include <libusb.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>

#include "common/loopback_device.h"

namespace loopback_device = usbnet::loopback_device;

int main(int argc, char** argv) {
  const unsigned timeout = argc > 1 ? static_cast<unsigned>(std::atoi(argv[1])) : 0;
  libusb_context* ctx = nullptr;
  if (libusb_init(&ctx) != 0) return 100;
  libusb_device_handle* h =
      libusb_open_device_with_vid_pid(ctx, loopback_device::kVendorId, loopback_device::kProductId);
  if (!h) {
    std::printf("no device\n");
    return 101;
  }
  if (libusb_claim_interface(h, 0) != 0) return 102;
  unsigned char buffer[512];
  int n = -1;
  std::printf("waiting\n");
  std::fflush(stdout);
  const auto start = std::chrono::steady_clock::now();
  const int r = libusb_bulk_transfer(h, 0x81, buffer, sizeof buffer, &n, timeout);
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::steady_clock::now() - start)
                      .count();
  std::printf("result %s transferred %d after %lld ms\n", libusb_error_name(r), n,
              static_cast<long long>(ms));
  // The device is gone: requests fail cleanly, nothing hangs.
  std::printf("claim %s\n", libusb_error_name(libusb_release_interface(h, 0)));
  libusb_close(h);
  libusb_exit(ctx);
  return 0;
}
