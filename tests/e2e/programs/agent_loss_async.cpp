// A plain libusb program with many asynchronous transfers in flight on a remote device when its
// agent is killed: every callback must fire (with NO_DEVICE), nothing may hang, and everything
// is freed. It prints "in flight" when ready to be cut off.
#include <libusb.h>

#include <chrono>
#include <cstdio>
#include <vector>

#include "common/loopback_device.h"

namespace loopback_device = usbnet::loopback_device;

int main() {
  libusb_context* ctx = nullptr;
  if (libusb_init(&ctx) != 0) return 100;
  libusb_device_handle* h =
      libusb_open_device_with_vid_pid(ctx, loopback_device::kVendorId, loopback_device::kProductId);
  if (!h || libusb_claim_interface(h, 0) != 0) return 101;
  constexpr int kTransfers = 16;
  struct State {
    int callbacks = 0, no_device = 0;
  } state;
  std::vector<std::vector<unsigned char>> buffers(kTransfers, std::vector<unsigned char>(512));
  std::vector<libusb_transfer*> transfers;
  for (int i = 0; i < kTransfers; ++i) {
    libusb_transfer* t = libusb_alloc_transfer(0);
    // Reads of the empty loopback queue (they wait) and writes to the sink (they may complete).
    const bool read = i % 2 == 0;
    libusb_fill_bulk_transfer(
        t, h, read ? 0x81 : 0x02, buffers[i].data(), 512,
        [](libusb_transfer* x) {
          auto* s = static_cast<State*>(x->user_data);
          ++s->callbacks;
          if (x->status == LIBUSB_TRANSFER_NO_DEVICE) ++s->no_device;
        },
        &state, 0);
    if (libusb_submit_transfer(t) != 0) return 102;
    transfers.push_back(t);
  }
  std::printf("in flight\n");
  std::fflush(stdout);
  const auto start = std::chrono::steady_clock::now();
  while (state.callbacks < kTransfers &&
         std::chrono::steady_clock::now() - start < std::chrono::seconds(20)) {
    timeval tv{0, 200000};
    libusb_handle_events_timeout_completed(ctx, &tv, nullptr);
  }
  std::printf("callbacks %d, no_device %d\n", state.callbacks, state.no_device);
  // After the loss: new transfers fail at once, requests too.
  libusb_transfer* late = transfers[0];
  std::printf("submit after loss: %s\n", libusb_error_name(libusb_submit_transfer(late)));
  std::printf("release after loss: %s\n", libusb_error_name(libusb_release_interface(h, 0)));
  for (libusb_transfer* t : transfers) libusb_free_transfer(t);
  libusb_close(h);
  libusb_exit(ctx);
  return state.callbacks == kTransfers ? 0 : 1;
}
