// hid_read: reads the HID report descriptor of a mouse (a control transfer) and then N input
// reports from its interrupt endpoint 0x81; prints each report in hex, one per line.
//
//   hid_read [VID:PID] [REPORTS]       (default 1209:0002, 5)
#include <cstdio>
#include <cstdlib>

#include "example_util.h"

int main(int argc, char** argv) {
  std::uint16_t vid = 0x1209, pid = 0x0002;
  if (argc > 1 && !example::parse_vid_pid(argv[1], vid, pid)) return 2;
  const int reports = argc > 2 ? std::atoi(argv[2]) : 5;
  example::Context ctx = example::init();
  example::Handle h = example::open(ctx.get(), vid, pid);
  example::check(libusb_claim_interface(h.get(), 0), "claim interface 0");
  unsigned char descriptor[256];
  const int length =
      example::check(libusb_control_transfer(h.get(), 0x81,  // device to host, standard, interface
                                             LIBUSB_REQUEST_GET_DESCRIPTOR, 0x2200, 0, descriptor,
                                             sizeof descriptor, 1000),
                     "GET_DESCRIPTOR(REPORT)");
  std::printf("report descriptor: %d bytes\n", length);
  for (int i = 0; i < reports; ++i) {
    unsigned char report[4];
    int got = 0;
    example::check(libusb_interrupt_transfer(h.get(), 0x81, report, sizeof report, &got, 1000),
                   "interrupt IN");
    for (int b = 0; b < got; ++b) std::printf("%02x", report[b]);
    std::printf("\n");
  }
  libusb_release_interface(h.get(), 0);
  return 0;
}
