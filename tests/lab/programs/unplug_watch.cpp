// Watches a device being unplugged and plugged in again, as a program that holds it open sees
// it: a hotplug callback for the device's VID:PID, the device opened with an interrupt IN
// transfer waiting on it. Prints "ready" once it waits; then expects, within SECONDS, the
// departure (hotplug LEFT), the waiting transfer ending with NO_DEVICE, a new control transfer
// failing with NO_DEVICE, and then the device's return (hotplug ARRIVED). Exit status 0 when
// all of that happened, 1 otherwise (with what was missing).
//
//   unplug_watch VID:PID SECONDS
#include <cstdio>
#include <string>
#include <vector>

#include "lab_util.h"

namespace {

struct Seen {
  bool left = false;
  bool arrived = false;
  bool transfer_done = false;
  libusb_transfer_status status = LIBUSB_TRANSFER_COMPLETED;
};

int LIBUSB_CALL on_hotplug(libusb_context*, libusb_device*, libusb_hotplug_event event,
                           void* user_data) {
  auto* seen = static_cast<Seen*>(user_data);
  if (event == LIBUSB_HOTPLUG_EVENT_DEVICE_LEFT) {
    seen->left = true;
    std::printf("hotplug: left\n");
  } else {
    seen->arrived = true;
    std::printf("hotplug: arrived\n");
  }
  std::fflush(stdout);
  return 0;
}

void LIBUSB_CALL on_transfer(libusb_transfer* transfer) {
  auto* seen = static_cast<Seen*>(transfer->user_data);
  seen->transfer_done = true;
  seen->status = transfer->status;
  std::printf("interrupt transfer ended: %s\n",
              transfer->status == LIBUSB_TRANSFER_NO_DEVICE ? "NO_DEVICE" : "another status");
  std::fflush(stdout);
}

struct TransferDeleter {
  void operator()(libusb_transfer* t) const { libusb_free_transfer(t); }
};

template <typename Done>
bool handle_until(libusb_context* ctx, std::chrono::steady_clock::time_point end, Done done) {
  while (!done() && std::chrono::steady_clock::now() < end) {
    timeval tv{0, 100000};
    libusb_handle_events_timeout_completed(ctx, &tv, nullptr);
  }
  return done();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: unplug_watch VID:PID SECONDS\n");
    return 2;
  }
  std::uint16_t vid, pid;
  lab::parse_vid_pid(argv[1], vid, pid);
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(std::stoi(argv[2]));

  lab::Context ctx = lab::init();
  if (!libusb_has_capability(LIBUSB_CAP_HAS_HOTPLUG)) lab::fail("libusb has no hotplug here");
  Seen seen;
  libusb_hotplug_callback_handle callback = 0;
  lab::check(libusb_hotplug_register_callback(
                 ctx.get(), LIBUSB_HOTPLUG_EVENT_DEVICE_ARRIVED | LIBUSB_HOTPLUG_EVENT_DEVICE_LEFT,
                 0, vid, pid, LIBUSB_HOTPLUG_MATCH_ANY, &on_hotplug, &seen, &callback),
             "hotplug register");

  int failures = 0;
  {
    // Its first interface: MTP's has an event endpoint (interrupt IN), a HID's a report one.
    lab::Interface usb = lab::open_interface(ctx.get(), vid, pid, -1);
    if (!usb.interrupt_in) lab::fail("no interrupt IN endpoint to wait on");
    std::unique_ptr<libusb_transfer, TransferDeleter> transfer(libusb_alloc_transfer(0));
    std::vector<unsigned char> buffer(usb.interrupt_in_size);
    libusb_fill_interrupt_transfer(transfer.get(), usb.handle.get(), usb.interrupt_in,
                                   buffer.data(), static_cast<int>(buffer.size()), &on_transfer,
                                   &seen, 0);
    lab::check(libusb_submit_transfer(transfer.get()), "submit interrupt transfer");
    std::printf("ready\n");
    std::fflush(stdout);

    if (!handle_until(ctx.get(), end, [&] { return seen.left && seen.transfer_done; })) {
      std::printf("missing: %s%s\n", seen.left ? "" : "the hotplug departure ",
                  seen.transfer_done ? "" : "the end of the waiting transfer");
      ++failures;
      // The transfer must not outlive its buffer: cancel it and wait for it.
      libusb_cancel_transfer(transfer.get());
      handle_until(ctx.get(), std::chrono::steady_clock::now() + std::chrono::seconds(5),
                   [&] { return seen.transfer_done; });
    }
    if (seen.transfer_done && seen.status != LIBUSB_TRANSFER_NO_DEVICE) {
      std::printf("the waiting transfer ended with status %d, not NO_DEVICE\n", seen.status);
      ++failures;
    }
    unsigned char status[2];
    const int r = libusb_control_transfer(usb.handle.get(), LIBUSB_ENDPOINT_IN,
                                          LIBUSB_REQUEST_GET_STATUS, 0, 0, status, 2, 2000);
    std::printf("control transfer after the departure: %s\n",
                r < 0 ? libusb_error_name(r) : "it succeeded");
    if (r != LIBUSB_ERROR_NO_DEVICE) ++failures;
  }
  std::printf("waiting for the device to return\n");
  std::fflush(stdout);
  if (!handle_until(ctx.get(), end, [&] { return seen.arrived; })) {
    std::printf("missing: the hotplug arrival\n");
    ++failures;
  }
  libusb_hotplug_deregister_callback(ctx.get(), callback);
  return failures == 0 ? 0 : 1;
}
