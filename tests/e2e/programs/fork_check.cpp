// A plain libusb program that forks while it uses a remote device. The child starts libusb
// afresh and uses the device through its own connection; the parent's transfers go on
// unharmed. Exit status 0 when both sides worked.
#include <libusb.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>

#include "common/loopback_device.h"

namespace loopback_device = usbnet::loopback_device;

namespace {

int read_status(libusb_device_handle* h) {
  unsigned char status[2];
  return libusb_control_transfer(h, 0x80, 0, 0, 0, status, 2, 2000);
}

int count_remote(libusb_context* ctx) {
  libusb_device** list = nullptr;
  const ssize_t n = libusb_get_device_list(ctx, &list);
  int remote = 0;
  for (ssize_t i = 0; i < n; ++i) {
    libusb_device_descriptor d{};
    libusb_get_device_descriptor(list[i], &d);
    remote += d.idVendor == loopback_device::kVendorId;
  }
  libusb_free_device_list(list, 1);
  return remote;
}

}  // namespace

int main() {
  libusb_context* ctx = nullptr;
  if (libusb_init(&ctx) != 0) return 100;
  libusb_device_handle* h =
      libusb_open_device_with_vid_pid(ctx, loopback_device::kVendorId, loopback_device::kProductId);
  if (!h) return 101;
  if (read_status(h) != 2) return 102;
  const pid_t child = fork();
  if (child == 0) {
    // The parent's context is the parent's: the child sees no remote device through it...
    const int inherited = count_remote(ctx);
    // ...but a context of its own connects afresh.
    libusb_context* mine = nullptr;
    if (libusb_init(&mine) != 0) _exit(10);
    libusb_device_handle* own = libusb_open_device_with_vid_pid(mine, loopback_device::kVendorId,
                                                                loopback_device::kProductId);
    const int ok = own && read_status(own) == 2;
    std::printf("child: inherited context shows %d remote devices, own context %s\n", inherited,
                ok ? "works" : "FAILED");
    std::fflush(stdout);
    if (own) libusb_close(own);
    libusb_exit(mine);
    _exit(inherited == 0 && ok ? 0 : 11);
  }
  int failures = 0;
  for (int i = 0; i < 200; ++i) failures += read_status(h) != 2;
  int status = 0;
  waitpid(child, &status, 0);
  for (int i = 0; i < 50; ++i) failures += read_status(h) != 2;
  std::printf("parent: %d failed transfers, child exit %d\n", failures,
              WIFEXITED(status) ? WEXITSTATUS(status) : -1);
  libusb_close(h);
  libusb_exit(ctx);
  return failures == 0 && WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : 1;
}
