/* A libusb-1.0.so.0 of a program's own with a function the shim does not have (libusb 1.0.27's
 * libusb_init_context): `usbnet run` must refuse a program that needs it. */
__attribute__((visibility("default"))) int libusb_init(void** context) {
  if (context) *context = 0;
  return 0;
}
__attribute__((visibility("default"))) int libusb_init_context(void** context, const void* options,
                                                               int count) {
  (void)options;
  (void)count;
  return libusb_init(context);
}
