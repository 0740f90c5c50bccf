/* A program with libusb linked into it (here: its own libusb_init), as a vendor tool built
 * against a static libusb is: its calls never go through the dynamic loader, so `usbnet run`
 * must refuse it. */
int libusb_init(void** context);
int libusb_init(void** context) {
  if (context) *context = 0;
  return 0;
}
int main(void) { return libusb_init(0); }
