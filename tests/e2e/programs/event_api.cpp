// A plain libusb program that exercises libusb's multi-threaded event API on a remote device:
// a dedicated event thread with the event lock (lock_events / handle_events_locked /
// event_handling_ok), a second thread that waits as an event waiter (lock_event_waiters /
// event_handler_active / wait_for_event), interrupt_event_handler waking a blocked handler, and
// the completed-flag variants. Exit status: the number of failures.
#include <libusb.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <thread>

#include "checks.h"

#include "common/loopback_device.h"

namespace loopback_device = usbnet::loopback_device;

namespace {

using checks::check;
using checks::failures;

void LIBUSB_CALL set_flag(libusb_transfer* t) { *static_cast<int*>(t->user_data) = 1; }
// For a flag that another thread reads while the event thread runs the callback.
void LIBUSB_CALL set_shared_flag(libusb_transfer* t) {
  static_cast<std::atomic<int>*>(t->user_data)->store(1);
}

}  // namespace

int main() {
  libusb_context* ctx = nullptr;
  if (libusb_init(&ctx) != 0) return 100;
  libusb_device_handle* h =
      libusb_open_device_with_vid_pid(ctx, loopback_device::kVendorId, loopback_device::kProductId);
  if (!h || libusb_claim_interface(h, 0) != 0) return 101;

  check(libusb_pollfds_handle_timeouts(ctx) == 1, "timeouts come through the descriptors");
  timeval next{};
  check(libusb_get_next_timeout(ctx, &next) == 0, "no timeout to handle by hand");
  check(libusb_event_handler_active(ctx) == 0, "no event handler yet");

  // The event lock: taken once, busy for another thread.
  check(libusb_try_lock_events(ctx) == 0, "try_lock_events takes the lock");
  check(libusb_event_handler_active(ctx) == 1, "an event handler is active");
  int other = -1;
  std::thread([&] { other = libusb_try_lock_events(ctx); }).join();
  check(other == 1, "another thread cannot take it");
  libusb_unlock_events(ctx);

  // A dedicated event thread (the pattern of libusb's "full story"), and this thread waiting.
  std::atomic<bool> stop{false};
  std::thread events([&] {
    while (!stop) {
      libusb_lock_events(ctx);
      while (!stop && libusb_event_handling_ok(ctx)) {
        timeval tv{0, 100000};
        libusb_handle_events_locked(ctx, &tv);
      }
      libusb_unlock_events(ctx);
    }
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  unsigned char out[100], in[512];
  for (int i = 0; i < 100; ++i) out[i] = static_cast<unsigned char>(i);
  std::atomic<int> wrote = 0, read = 0;
  libusb_transfer* w = libusb_alloc_transfer(0);
  libusb_fill_bulk_transfer(w, h, 0x01, out, 100, &set_shared_flag, &wrote, 2000);
  libusb_transfer* r = libusb_alloc_transfer(0);
  libusb_fill_bulk_transfer(r, h, 0x81, in, 512, &set_shared_flag, &read, 2000);
  libusb_submit_transfer(r);
  libusb_submit_transfer(w);
  libusb_lock_event_waiters(ctx);
  const auto start = std::chrono::steady_clock::now();
  while (!read && std::chrono::steady_clock::now() - start < std::chrono::seconds(5)) {
    if (libusb_event_handler_active(ctx)) {
      timeval tv{1, 0};
      libusb_wait_for_event(ctx, &tv);
    }
  }
  libusb_unlock_event_waiters(ctx);
  check(read == 1 && wrote == 1 && r->actual_length == 100 && in[99] == 99,
        "a waiter sees the completion handled by the event thread");
  // Blocking calls from a thread that is not the handler wait for the handler's rounds.
  unsigned char status[2];
  check(libusb_control_transfer(h, 0x80, 0, 0, 0, status, 2, 1000) == 2,
        "a synchronous transfer while another thread handles events");
  stop = true;
  events.join();

  // interrupt_event_handler wakes a handler that would block for ten seconds.
  std::thread blocked([&] {
    timeval tv{10, 0};
    libusb_handle_events_timeout(ctx, &tv);
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  const auto before = std::chrono::steady_clock::now();
  libusb_interrupt_event_handler(ctx);
  blocked.join();
  check(std::chrono::steady_clock::now() - before < std::chrono::seconds(5),
        "interrupt_event_handler wakes a blocked handler");

  // The completed flag: handle_events_completed returns once it is set.
  int done = 0;
  libusb_transfer* s = libusb_alloc_transfer(0);
  unsigned char setup[8 + 2];
  libusb_fill_control_setup(setup, 0x80, 0, 0, 0, 2);
  libusb_fill_control_transfer(s, h, setup, &set_flag, &done, 1000);
  libusb_submit_transfer(s);
  int rounds = 0;
  while (!done && rounds++ < 100) libusb_handle_events_completed(ctx, &done);
  check(done == 1, "handle_events_completed");
  timeval invalid{-1, 0};
  check(libusb_handle_events_timeout(ctx, &invalid) == LIBUSB_ERROR_INVALID_PARAM,
        "an invalid timeval is refused");

  for (libusb_transfer* t : {w, r, s}) libusb_free_transfer(t);
  libusb_release_interface(h, 0);
  libusb_close(h);
  libusb_exit(ctx);
  std::printf("event api: %d failures\n", failures);
  return failures;
}
