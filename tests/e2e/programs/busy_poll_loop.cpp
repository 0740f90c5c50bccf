// A plain libusb program with its own poll() loop (libusb_get_pollfds, kept current by the
// notifiers, then libusb_handle_events_timeout with a zero timeout after each poll) that keeps
// a loopback device busy, its source stream and echoed messages always with transfers in
// flight, while libusb's own descriptor has work too.
//
// Deregistering a hotplug callback makes libusb's event descriptor ready, and the next
// libusb_handle_events* handles it (libusb frees the callback there) so that it is no longer
// ready. The same round of event handling that runs the loopback's completions must handle it:
// libusb serves every descriptor poll() reported, in one call. A round that ran only the
// completions waiting for it would leave libusb's own events (and so a local device's
// completions and timeouts) unhandled for as long as the remote traffic lasts.
//
// The program deregisters a callback, polls until that descriptor is reported ready, and checks
// after each libusb_handle_events_timeout that it was handled; ROUNDS times, while every byte of
// the stream and of the echoes is checked.
//
//   busy_poll_loop ROUNDS SECONDS
#include <libusb.h>
#include <poll.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <iterator>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "checks.h"

#include "common/loopback_device.h"

namespace loopback_device = usbnet::loopback_device;

namespace {

using checks::check;
using Clock = std::chrono::steady_clock;

constexpr std::uint16_t kVendor = loopback_device::kVendorId,
                        kProduct = loopback_device::kProductId;
constexpr unsigned char kLoopOut = 0x01, kLoopIn = 0x81, kSourceIn = 0x82;
constexpr int kSourceDepth = 4, kSourceLength = 16384, kEchoSlots = 3, kEchoBuffer = 16384;
constexpr unsigned kTimeoutMs = 10000;

std::vector<pollfd> fds;  // what the program polls: libusb's descriptors, from the notifiers

void LIBUSB_CALL on_added(int fd, short events, void*) { fds.push_back({fd, events, 0}); }
void LIBUSB_CALL on_removed(int fd, void*) {
  std::erase_if(fds, [fd](const pollfd& p) { return p.fd == fd; });
}

int bad_transfers = 0;  // reported once each, then the traffic stops

void bad(const std::string& what) {
  if (bad_transfers++ < 5) std::printf("FAIL %s\n", what.c_str());
}

std::uint32_t checksum(const unsigned char* p, std::size_t n) {
  std::uint32_t sum = 0;
  for (std::size_t i = 0; i < n; ++i) sum = sum * 31 + p[i];
  return sum;
}

// The source endpoint streams a pattern (byte i is i % 251): transfers on one endpoint complete
// in order, so each continues the stream.
struct Source {
  libusb_transfer* transfer = libusb_alloc_transfer(0);
  std::vector<unsigned char> buffer = std::vector<unsigned char>(kSourceLength);
};
std::uint64_t source_offset = 0;
bool running = true;
int in_flight = 0;

void submit(libusb_transfer* t) {
  if (const int r = libusb_submit_transfer(t); r != 0) {
    bad(std::string("libusb_submit_transfer: ") + libusb_error_name(r));
    return;
  }
  ++in_flight;
}

void LIBUSB_CALL on_source(libusb_transfer* t) {
  --in_flight;
  auto* s = static_cast<Source*>(t->user_data);
  if (t->status != LIBUSB_TRANSFER_COMPLETED || t->actual_length != kSourceLength) {
    return bad(std::string("source transfer: ") + libusb_error_name(t->status));
  }
  for (int i = 0; i < kSourceLength; ++i) {
    if (s->buffer[static_cast<std::size_t>(i)] !=
        loopback_device::pattern_byte(source_offset + i)) {
      return bad("source byte " + std::to_string(source_offset + i) + " breaks the pattern");
    }
  }
  source_offset += kSourceLength;
  if (running && bad_transfers == 0) submit(t);
}

// Messages through the loopback's OUT endpoint come back, in order, from its IN twin.
struct Echo {
  libusb_transfer* out = libusb_alloc_transfer(0);
  libusb_transfer* in = libusb_alloc_transfer(0);
  std::vector<unsigned char> sent, received = std::vector<unsigned char>(kEchoBuffer);
  bool out_done = true, in_done = true;
};
libusb_device_handle* loopback = nullptr;
std::deque<std::pair<int, std::uint32_t>> expected;  // length and checksum of each message sent
std::uint32_t seed = 20261202;
long sent = 0, echoed = 0;

void send(Echo& e);

void slot_done(Echo& e) {
  if (e.out_done && e.in_done && running && bad_transfers == 0) send(e);
}

void LIBUSB_CALL on_echo_out(libusb_transfer* t) {
  --in_flight;
  auto& e = *static_cast<Echo*>(t->user_data);
  e.out_done = true;
  if (t->status != LIBUSB_TRANSFER_COMPLETED ||
      t->actual_length != static_cast<int>(e.sent.size())) {
    bad(std::string("echo OUT: ") + libusb_error_name(t->status));
  }
  slot_done(e);
}

void LIBUSB_CALL on_echo_in(libusb_transfer* t) {
  --in_flight;
  auto& e = *static_cast<Echo*>(t->user_data);
  e.in_done = true;
  const auto [length, sum] = expected.front();
  expected.pop_front();
  if (t->status != LIBUSB_TRANSFER_COMPLETED || t->actual_length != length ||
      checksum(e.received.data(), static_cast<std::size_t>(length)) != sum) {
    bad(std::string("echo IN: ") + libusb_error_name(t->status) + ", " +
        std::to_string(t->actual_length) + " of " + std::to_string(length) + " bytes");
  } else {
    ++echoed;
  }
  slot_done(e);
}

void send(Echo& e) {
  // Short, whole-packet (ended by a zero-length packet) and multi-packet messages.
  static constexpr int kLengths[] = {1, 511, 512, 1500, 4096, 8000, 12345};
  const int length = kLengths[sent++ % std::size(kLengths)];
  e.sent.resize(static_cast<std::size_t>(length));
  for (auto& byte : e.sent) {
    seed = seed * 1664525u + 1013904223u;
    byte = static_cast<unsigned char>(seed >> 24);
  }
  expected.emplace_back(length, checksum(e.sent.data(), e.sent.size()));
  libusb_fill_bulk_transfer(e.out, loopback, kLoopOut, e.sent.data(), length, &on_echo_out, &e,
                            kTimeoutMs);
  libusb_fill_bulk_transfer(e.in, loopback, kLoopIn, e.received.data(), kEchoBuffer, &on_echo_in,
                            &e, kTimeoutMs);
  e.out_done = e.in_done = false;
  submit(e.out);
  submit(e.in);
}

int LIBUSB_CALL on_hotplug(libusb_context*, libusb_device*, libusb_hotplug_event, void*) {
  return 0;
}

// Registers and deregisters a hotplug callback, which gives libusb's event handling work.
bool deregister_one(libusb_context* ctx) {
  libusb_hotplug_callback_handle handle = 0;
  if (libusb_hotplug_register_callback(ctx, LIBUSB_HOTPLUG_EVENT_DEVICE_ARRIVED, 0, kVendor,
                                       kProduct, LIBUSB_HOTPLUG_MATCH_ANY, &on_hotplug, nullptr,
                                       &handle) != 0) {
    return false;
  }
  libusb_hotplug_deregister_callback(ctx, handle);
  return true;
}

// The descriptors ready now.
std::set<int> ready_now() {
  std::vector<pollfd> now = fds;
  std::set<int> ready;
  if (poll(now.data(), now.size(), 0) > 0) {
    for (const pollfd& p : now) {
      if (p.revents != 0) ready.insert(p.fd);
    }
  }
  return ready;
}

void handle_now(libusb_context* ctx) {
  timeval zero{0, 0};
  if (const int r = libusb_handle_events_timeout(ctx, &zero); r != 0) {
    bad(std::string("libusb_handle_events_timeout: ") + libusb_error_name(r));
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: busy_poll_loop ROUNDS SECONDS\n");
    return 2;
  }
  const int rounds = std::atoi(argv[1]);
  const auto deadline = Clock::now() + std::chrono::seconds(std::atoi(argv[2]));
  libusb_context* ctx = nullptr;
  if (libusb_init(&ctx) != 0) return 100;
  libusb_set_pollfd_notifiers(ctx, &on_added, &on_removed, nullptr);
  const libusb_pollfd** initial = libusb_get_pollfds(ctx);
  std::set<int> libusb_own;  // libusb's descriptors before any device was opened
  for (const libusb_pollfd** p = initial; p && *p; ++p) {
    fds.push_back({(*p)->fd, (*p)->events, 0});
    libusb_own.insert((*p)->fd);
  }
  libusb_free_pollfds(initial);
  loopback = libusb_open_device_with_vid_pid(ctx, kVendor, kProduct);
  if (!loopback || libusb_claim_interface(loopback, 0) != 0) return 101;
  // RESET_STREAMS: the pattern starts at byte 0 and nothing is queued for the IN endpoint.
  check(libusb_control_transfer(loopback, 0x40, 0x06, 0, 0, nullptr, 0, kTimeoutMs) == 0,
        "RESET_STREAMS");

  // Which of libusb's own descriptors a deregistration makes ready, found while nothing else is
  // going on (after a few rounds, until none of them is ready).
  auto own_ready = [&libusb_own] {
    std::set<int> ready;
    std::ranges::set_intersection(ready_now(), libusb_own, std::inserter(ready, ready.end()));
    return ready;
  };
  for (int i = 0; i < 10 && !own_ready().empty(); ++i) handle_now(ctx);
  check(own_ready().empty(), "with nothing going on, none of libusb's own descriptors is ready");
  check(deregister_one(ctx), "a hotplug callback registered and deregistered");
  const std::set<int> event_fds = own_ready();
  check(event_fds.size() == 1, "deregistering it made one of libusb's descriptors ready (" +
                                   std::to_string(event_fds.size()) + ")");
  if (event_fds.size() != 1) return checks::failures;
  const int event_fd = *event_fds.begin();
  handle_now(ctx);
  check(!ready_now().contains(event_fd), "with nothing else going on, one round handled it");

  std::vector<Source> sources(kSourceDepth);
  for (Source& s : sources) {
    libusb_fill_bulk_transfer(s.transfer, loopback, kSourceIn, s.buffer.data(), kSourceLength,
                              &on_source, &s, kTimeoutMs);
    submit(s.transfer);
  }
  std::vector<Echo> echoes(kEchoSlots);
  for (Echo& e : echoes) send(e);

  // The program's own loop. Each round waits until the loopback's traffic has made one of
  // libusb's other descriptors ready, takes a moment before handling (as a program that does
  // other work between its poll and libusb's turn), and checks the event descriptor: a
  // deregistration is pending until a round that started with it ready has handled it.
  int handled = 0, left_unhandled = 0, polls = 0;
  bool pending = false;
  while (handled < rounds && bad_transfers == 0 && Clock::now() < deadline) {
    if (!pending) {
      if (!deregister_one(ctx)) {
        bad("libusb_hotplug_register_callback failed");
        break;
      }
      pending = true;
    }
    int timeout_ms = 1000;
    timeval next{};
    if (libusb_get_next_timeout(ctx, &next) == 1) {
      timeout_ms = std::min<int>(
          timeout_ms, static_cast<int>(next.tv_sec * 1000 + (next.tv_usec + 999) / 1000));
    }
    std::vector<pollfd> others = fds;
    std::erase_if(others, [event_fd](const pollfd& p) { return p.fd == event_fd; });
    if (poll(others.data(), others.size(), timeout_ms) < 0) break;
    ++polls;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    const bool event_ready = ready_now().contains(event_fd);
    handle_now(ctx);
    if (!event_ready) continue;
    if (ready_now().contains(event_fd)) {
      ++left_unhandled;
    } else {
      ++handled;
      pending = false;
    }
  }

  // The traffic ends: every transfer completes (handled in the same loop, bounded).
  running = false;
  const auto drain_deadline = Clock::now() + std::chrono::seconds(15);
  while (in_flight > 0 && Clock::now() < drain_deadline) {
    std::vector<pollfd> polled = fds;
    poll(polled.data(), polled.size(), 100);
    handle_now(ctx);
  }
  check(in_flight == 0, "every transfer completed (" + std::to_string(in_flight) + " left)");
  check(bad_transfers == 0, "every transfer completed with the expected bytes");
  check(handled == rounds, std::to_string(handled) + " of " + std::to_string(rounds) +
                               " deregistrations handled in time, while the loopback device " +
                               "streamed " + std::to_string(source_offset) + " bytes and echoed " +
                               std::to_string(echoed) + " messages, in " + std::to_string(polls) +
                               " polls");
  check(left_unhandled == 0,
        "libusb_handle_events_timeout left libusb's event descriptor ready in " +
            std::to_string(left_unhandled) + " rounds that poll() had started with it ready");
  for (Source& s : sources) libusb_free_transfer(s.transfer);
  for (Echo& e : echoes) {
    libusb_free_transfer(e.out);
    libusb_free_transfer(e.in);
  }
  libusb_release_interface(loopback, 0);
  libusb_close(loopback);
  libusb_set_pollfd_notifiers(ctx, nullptr, nullptr, nullptr);
  libusb_exit(ctx);
  std::printf("busy poll loop: %d failures\n", checks::failures);
  return checks::failures;
}
