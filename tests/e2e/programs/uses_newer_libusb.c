/* Needs the libusb-1.0.so.0 of newer_libusb.c, found through its RUNPATH. */
int libusb_init_context(void** context, const void* options, int count);
int main(void) { return libusb_init_context(0, 0, 0); }
