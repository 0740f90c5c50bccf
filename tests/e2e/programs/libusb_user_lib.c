/* A shared library that links libusb-1.0 itself, as libftdi and libmtp do, for dlopen_libusb's
 * "linked" way: loaded with dlopen(RTLD_LOCAL), its calls to libusb_* bind through the global
 * scope, where the preloaded shim comes first. */
#include <libusb.h>

__attribute__((visibility("default"))) int count_remote_loopback_devices(void) {
  libusb_context* ctx = NULL;
  if (libusb_init(&ctx) != 0) return -1;
  libusb_device** list = NULL;
  ssize_t n = libusb_get_device_list(ctx, &list);
  int remote = 0;
  for (ssize_t i = 0; i < n; ++i) {
    struct libusb_device_descriptor d;
    if (libusb_get_device_descriptor(list[i], &d) == 0 && d.idVendor == 0x1209 &&
        libusb_get_bus_number(list[i]) >= 201)
      ++remote;
  }
  if (n >= 0) libusb_free_device_list(list, 1);
  libusb_exit(ctx);
  return n < 0 ? -1 : remote;
}
