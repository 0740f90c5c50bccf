// A plain libusb program that integrates libusb into its own poll() loop, as GUI and daemon
// event loops do: it takes libusb's descriptors (libusb_get_pollfds, kept current with
// libusb_set_pollfd_notifiers), polls them itself with libusb_get_next_timeout, and calls
// libusb_handle_events_timeout with a zero timeout only when poll() says so. It runs control,
// bulk and interrupt transfers asynchronously and checks their callbacks.
#include <libusb.h>
#include <poll.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <vector>

#include "common/loopback_device.h"

namespace loopback_device = usbnet::loopback_device;

namespace {

std::vector<pollfd> fds;
int added = 0, removed = 0, callbacks = 0, failures = 0;

void LIBUSB_CALL on_added(int fd, short events, void*) {
  fds.push_back({fd, events, 0});
  ++added;
}
void LIBUSB_CALL on_removed(int fd, void*) {
  std::erase_if(fds, [fd](const pollfd& p) { return p.fd == fd; });
  ++removed;
}

void LIBUSB_CALL on_done(libusb_transfer* t) {
  ++callbacks;
  const int expected = *static_cast<int*>(t->user_data);
  if (t->status != LIBUSB_TRANSFER_COMPLETED || t->actual_length != expected) {
    std::printf("FAIL transfer on 0x%02x: %s, %d bytes (expected %d)\n", t->endpoint,
                libusb_error_name(t->status), t->actual_length, expected);
    ++failures;
  }
}

// The program's own loop: poll libusb's descriptors, then let libusb handle what is ready.
void run_until(libusb_context* ctx, int target) {
  for (int rounds = 0; callbacks < target && rounds < 10000; ++rounds) {
    int timeout_ms = 1000;
    timeval next{};
    if (libusb_get_next_timeout(ctx, &next) == 1) {
      timeout_ms =
          std::min<int>(timeout_ms, static_cast<int>(next.tv_sec * 1000 + next.tv_usec / 1000));
    }
    const int n = poll(fds.data(), fds.size(), timeout_ms);
    if (n < 0) break;
    // Every transfer here completes at once: only a descriptor can have woken the loop.
    if (n == 0) {
      std::printf("FAIL poll timed out: no descriptor woke it\n");
      ++failures;
    }
    timeval zero{0, 0};
    if (libusb_handle_events_timeout(ctx, &zero) != 0) ++failures;
  }
}

}  // namespace

int main() {
  libusb_context* ctx = nullptr;
  if (libusb_init(&ctx) != 0) return 100;
  libusb_set_pollfd_notifiers(ctx, &on_added, &on_removed, nullptr);
  const libusb_pollfd** initial = libusb_get_pollfds(ctx);
  for (const libusb_pollfd** p = initial; p && *p; ++p) fds.push_back({(*p)->fd, (*p)->events, 0});
  libusb_free_pollfds(initial);
  libusb_device_handle* h =
      libusb_open_device_with_vid_pid(ctx, loopback_device::kVendorId, loopback_device::kProductId);
  if (!h || libusb_claim_interface(h, 0) != 0) return 101;
  // Connecting to the agent gave the program a new descriptor to poll, or it was there already.
  const libusb_pollfd** now = libusb_get_pollfds(ctx);
  std::size_t listed = 0;
  for (const libusb_pollfd** p = now; p && *p; ++p) ++listed;
  libusb_free_pollfds(now);
  std::printf("%zu descriptors to poll (%d added by notifiers)\n", listed, added);

  unsigned char control[8 + 64];
  libusb_transfer* c = libusb_alloc_transfer(0);
  int control_len = 2;
  libusb_fill_control_setup(control, 0x80, LIBUSB_REQUEST_GET_STATUS, 0, 0, 2);
  libusb_fill_control_transfer(c, h, control, &on_done, &control_len, 1000);

  std::vector<unsigned char> out(3000, 0x3c), in(4096);
  int out_len = 3000, in_len = 3000;
  libusb_transfer* o = libusb_alloc_transfer(0);
  libusb_fill_bulk_transfer(o, h, 0x01, out.data(), 3000, &on_done, &out_len, 1000);
  libusb_transfer* i = libusb_alloc_transfer(0);
  libusb_fill_bulk_transfer(i, h, 0x81, in.data(), 4096, &on_done, &in_len, 1000);

  unsigned char tick[64], tock[64];
  std::memset(tick, 0x7e, sizeof tick);
  int tick_len = 64;
  libusb_transfer* io = libusb_alloc_transfer(0);
  libusb_fill_interrupt_transfer(io, h, 0x03, tick, 64, &on_done, &tick_len, 1000);
  libusb_transfer* ii = libusb_alloc_transfer(0);
  libusb_fill_interrupt_transfer(ii, h, 0x83, tock, 64, &on_done, &tick_len, 1000);

  for (libusb_transfer* t : {i, c, o, ii, io}) {
    if (libusb_submit_transfer(t) != 0) ++failures;
  }
  run_until(ctx, 5);
  if (std::memcmp(in.data(), out.data(), 3000) != 0 || std::memcmp(tick, tock, 64) != 0) {
    std::printf("FAIL looped data differs\n");
    ++failures;
  }
  for (libusb_transfer* t : {i, c, o, ii, io}) libusb_free_transfer(t);
  libusb_release_interface(h, 0);
  libusb_close(h);
  libusb_set_pollfd_notifiers(ctx, nullptr, nullptr, nullptr);
  libusb_exit(ctx);
  std::printf("own poll loop: %d callbacks, %d failures\n", callbacks, failures);
  return callbacks == 5 && failures == 0 ? 0 : 1;
}
