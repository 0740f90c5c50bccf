// A plain libusb program that checks that a small transfer never waits behind a big one: while
// a 16 MiB bulk OUT streams to one device, a control request and an interrupt transfer to
// another device (on the same agent connection) must complete before the big transfer does.
#include <libusb.h>

#include <cstdio>
#include <string>
#include <vector>

#include "common/loopback_device.h"

namespace loopback_device = usbnet::loopback_device;

namespace {
std::vector<std::string> finished;
void LIBUSB_CALL note(libusb_transfer* t) {
  finished.push_back(static_cast<const char*>(t->user_data));
}
}  // namespace

int main() {
  libusb_context* ctx = nullptr;
  if (libusb_init(&ctx) != 0) return 100;
  libusb_device_handle* loopback =
      libusb_open_device_with_vid_pid(ctx, loopback_device::kVendorId, loopback_device::kProductId);
  libusb_device_handle* mouse =
      libusb_open_device_with_vid_pid(ctx, loopback_device::kVendorId, 0x0002);
  if (!loopback || !mouse || libusb_claim_interface(loopback, 0) != 0 ||
      libusb_claim_interface(mouse, 0) != 0) {
    return 101;
  }
  std::vector<unsigned char> big(16 << 20, 0x42);
  libusb_transfer* bulk = libusb_alloc_transfer(0);
  libusb_fill_bulk_transfer(bulk, loopback, 0x02, big.data(), static_cast<int>(big.size()), &note,
                            const_cast<char*>("bulk"), 10000);
  unsigned char setup[8 + 2];
  libusb_fill_control_setup(setup, 0x80, LIBUSB_REQUEST_GET_STATUS, 0, 0, 2);
  libusb_transfer* control = libusb_alloc_transfer(0);
  libusb_fill_control_transfer(control, mouse, setup, &note, const_cast<char*>("control"), 10000);
  unsigned char report[4];
  libusb_transfer* interrupt = libusb_alloc_transfer(0);
  libusb_fill_interrupt_transfer(interrupt, mouse, 0x81, report, 4, &note,
                                 const_cast<char*>("interrupt"), 10000);
  // The big one first: the small ones are submitted after it and still finish before it.
  if (libusb_submit_transfer(bulk) != 0 || libusb_submit_transfer(control) != 0 ||
      libusb_submit_transfer(interrupt) != 0) {
    return 102;
  }
  while (finished.size() < 3) {
    if (libusb_handle_events(ctx) != 0) return 103;
  }
  std::printf("finished:");
  for (const auto& f : finished) std::printf(" %s", f.c_str());
  std::printf("\n");
  const bool ok = finished.back() == "bulk" && bulk->status == LIBUSB_TRANSFER_COMPLETED &&
                  bulk->actual_length == static_cast<int>(big.size());
  for (libusb_transfer* t : {bulk, control, interrupt}) libusb_free_transfer(t);
  libusb_close(mouse);
  libusb_close(loopback);
  libusb_exit(ctx);
  return ok ? 0 : 1;
}
