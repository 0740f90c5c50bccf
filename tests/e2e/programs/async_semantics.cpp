// A plain libusb program that checks the asynchronous API's semantics on remote devices:
// cancellation in flight, CANCELLED statuses, FREE_TRANSFER and FREE_BUFFER, resubmission from
// the callback, per-endpoint order, timeouts, a stall, overflow, ADD_ZERO_PACKET, and
// isochronous OUT packets. Needs the loopback (1209:0001) and audio (1209:0003) devices.
// Exit status: the number of failures.
#include <libusb.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "checks.h"

#include "common/loopback_device.h"

namespace loopback_device = usbnet::loopback_device;

namespace {

using checks::check;
using checks::failures;

struct Log {
  std::vector<int> order;  // which transfers completed, in the order they did
  std::vector<int> statuses;
  int freed = 0;
};
Log events;

void LIBUSB_CALL record(libusb_transfer* t) {
  events.order.push_back(static_cast<int>(reinterpret_cast<std::intptr_t>(t->user_data)));
  events.statuses.push_back(t->status);
}

void run_events(libusb_context* ctx, std::size_t until) {
  for (int i = 0; events.order.size() < until && i < 200; ++i) {
    timeval tv{0, 50000};
    libusb_handle_events_timeout_completed(ctx, &tv, nullptr);
  }
}

libusb_transfer* bulk(libusb_device_handle* h, unsigned char ep, unsigned char* buffer, int length,
                      int id, unsigned timeout = 0) {
  libusb_transfer* t = libusb_alloc_transfer(0);
  libusb_fill_bulk_transfer(t, h, ep, buffer, length, &record,
                            reinterpret_cast<void*>(static_cast<std::intptr_t>(id)), timeout);
  return t;
}

std::uint64_t le64(const unsigned char* p) {
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = v << 8 | p[i];
  return v;
}

}  // namespace

int main() {
  libusb_context* ctx = nullptr;
  if (libusb_init(&ctx) != 0) return 100;
  libusb_device_handle* h =
      libusb_open_device_with_vid_pid(ctx, loopback_device::kVendorId, loopback_device::kProductId);
  if (!h || libusb_claim_interface(h, 0) != 0) return 101;
  libusb_control_transfer(h, 0x40, 0x06, 0, 0, nullptr, 0, 1000);  // RESET_STREAMS

  // Four reads wait on the empty loopback queue; two are cancelled; two get data, in order.
  std::vector<std::vector<unsigned char>> buffers(4, std::vector<unsigned char>(512));
  std::vector<libusb_transfer*> reads;
  for (int i = 0; i < 4; ++i) {
    reads.push_back(bulk(h, 0x81, buffers[i].data(), 512, i));
    check(libusb_submit_transfer(reads[i]) == 0, "submit read " + std::to_string(i));
  }
  check(libusb_cancel_transfer(reads[1]) == 0, "cancel a read in flight");
  check(libusb_cancel_transfer(reads[1]) == LIBUSB_ERROR_NOT_FOUND, "cancel it twice");
  check(libusb_cancel_transfer(reads[2]) == 0, "cancel another");
  run_events(ctx, 2);
  // As the kernel gives discarded URBs back: at once, while the first read still waits.
  check(
      events.order == std::vector<int>{1, 2} &&
          events.statuses == std::vector<int>{LIBUSB_TRANSFER_CANCELLED, LIBUSB_TRANSFER_CANCELLED},
      "the cancelled reads end at once, before the one waiting ahead of them");
  unsigned char a[10], b[20];
  std::memset(a, 'a', sizeof a);
  std::memset(b, 'b', sizeof b);
  int n = 0;
  libusb_bulk_transfer(h, 0x01, a, sizeof a, &n, 1000);
  libusb_bulk_transfer(h, 0x01, b, sizeof b, &n, 1000);
  run_events(ctx, 4);
  check(events.order.size() == 4, "four callbacks");
  int cancelled = 0;
  for (std::size_t i = 0; i < events.order.size(); ++i) {
    if (events.statuses[i] == LIBUSB_TRANSFER_CANCELLED) ++cancelled;
  }
  check(cancelled == 2, "two CANCELLED");
  check(reads[0]->status == LIBUSB_TRANSFER_COMPLETED && reads[0]->actual_length == 10 &&
            buffers[0][0] == 'a',
        "the first read got the first message");
  check(reads[3]->status == LIBUSB_TRANSFER_COMPLETED && reads[3]->actual_length == 20 &&
            buffers[3][0] == 'b',
        "the last read got the second message");
  for (libusb_transfer* t : reads) libusb_free_transfer(t);

  // FREE_TRANSFER and FREE_BUFFER: libusb frees both after the callback.
  events = {};
  auto* heap = static_cast<unsigned char*>(std::malloc(4096));
  libusb_transfer* freed = bulk(h, 0x82, heap, 4096, 7);
  freed->flags = LIBUSB_TRANSFER_FREE_TRANSFER | LIBUSB_TRANSFER_FREE_BUFFER;
  check(libusb_submit_transfer(freed) == 0, "submit a self-freeing transfer");
  run_events(ctx, 1);
  check(events.order == std::vector<int>{7} && events.statuses[0] == LIBUSB_TRANSFER_COMPLETED,
        "it completed (and was freed: see valgrind/ASan)");

  // A timeout ends a waiting read with TIMED_OUT.
  events = {};
  libusb_transfer* slow = bulk(h, 0x81, buffers[0].data(), 512, 8, 150);
  libusb_submit_transfer(slow);
  run_events(ctx, 1);
  check(slow->status == LIBUSB_TRANSFER_TIMED_OUT && slow->actual_length == 0, "TIMED_OUT");
  libusb_free_transfer(slow);

  // A halted endpoint: STALL.
  events = {};
  libusb_control_transfer(h, 0x02, LIBUSB_REQUEST_SET_FEATURE, 0, 0x82, nullptr, 0, 1000);
  libusb_transfer* stalled = bulk(h, 0x82, buffers[0].data(), 512, 9);
  libusb_submit_transfer(stalled);
  run_events(ctx, 1);
  check(stalled->status == LIBUSB_TRANSFER_STALL, "STALL");
  libusb_free_transfer(stalled);
  libusb_clear_halt(h, 0x82);

  // Resubmitting from the callback, many times, keeps the order of the source's pattern.
  struct Chain {
    int left = 50;
    std::uint64_t offset = 0;
    int wrong = 0;
  } chain;
  std::vector<unsigned char> chunk(1000);
  libusb_transfer* again = libusb_alloc_transfer(0);
  libusb_control_transfer(h, 0x40, 0x06, 0, 0, nullptr, 0, 1000);
  libusb_fill_bulk_transfer(
      again, h, 0x82, chunk.data(), 1000,
      [](libusb_transfer* t) {
        auto* c = static_cast<Chain*>(t->user_data);
        for (int i = 0; i < t->actual_length; ++i) {
          if (t->buffer[i] != loopback_device::pattern_byte(c->offset + i)) ++c->wrong;
        }
        c->offset += static_cast<std::uint64_t>(t->actual_length);
        if (--c->left > 0) libusb_submit_transfer(t);
      },
      &chain, 1000);
  libusb_submit_transfer(again);
  for (int i = 0; chain.left > 0 && i < 500; ++i) {
    timeval tv{0, 50000};
    libusb_handle_events_timeout(ctx, &tv);
  }
  check(chain.left == 0 && chain.wrong == 0 && chain.offset == 50000, "resubmitted 50 times");
  libusb_free_transfer(again);

  // More data than a buffer that is not a whole number of packets: OVERFLOW (babble).
  unsigned char big[600];
  std::memset(big, 'c', sizeof big);
  libusb_bulk_transfer(h, 0x01, big, sizeof big, &n, 1000);
  events = {};
  libusb_transfer* babble = bulk(h, 0x81, buffers[0].data(), 100, 10);
  libusb_submit_transfer(babble);
  run_events(ctx, 1);
  check(babble->status == LIBUSB_TRANSFER_OVERFLOW && babble->actual_length == 0, "OVERFLOW");
  libusb_free_transfer(babble);

  // ADD_ZERO_PACKET reaches the device: its sink counts the zero-length packets that end
  // transfers of whole packets, and those of empty transfers.
  libusb_control_transfer(h, 0x40, 0x06, 0, 0, nullptr, 0, 1000);
  std::vector<unsigned char> pattern(3048);
  for (std::size_t i = 0; i < pattern.size(); ++i) pattern[i] = loopback_device::pattern_byte(i);
  struct Out {
    int offset, length, flags;
  };
  const std::vector<Out> outs = {{0, 1024, LIBUSB_TRANSFER_ADD_ZERO_PACKET},
                                 {1024, 1000, LIBUSB_TRANSFER_ADD_ZERO_PACKET},
                                 {2024, 1024, 0},
                                 {3048, 0, 0}};
  events = {};
  std::vector<libusb_transfer*> writes;
  for (const Out& o : outs) {
    writes.push_back(bulk(h, 0x02, pattern.data() + o.offset, o.length, 20));
    writes.back()->flags = static_cast<std::uint8_t>(o.flags);
    check(libusb_submit_transfer(writes.back()) == 0, "submit a write to the sink");
  }
  run_events(ctx, outs.size());
  for (libusb_transfer* t : writes) {
    check(t->status == LIBUSB_TRANSFER_COMPLETED && t->actual_length == t->length,
          "the write completed whole");
    libusb_free_transfer(t);
  }
  unsigned char stats[24];
  check(libusb_control_transfer(h, 0xc0, 0x05, 0, 0, stats, sizeof stats, 1000) == 24 &&
            le64(stats) == 3048 && le64(stats + 8) == 0 && le64(stats + 16) == 2,
        "the sink got 3048 bytes of the pattern and two zero-length packets");

  libusb_release_interface(h, 0);
  libusb_close(h);

  // Isochronous OUT: every packet with its own length reaches the device, and comes back with
  // its own status and length.
  libusb_device_handle* audio =
      libusb_open_device_with_vid_pid(ctx, loopback_device::kVendorId, 0x0003);
  check(audio && libusb_claim_interface(audio, 0) == 0 &&
            libusb_set_interface_alt_setting(audio, 0, 1) == 0,
        "open the audio device, alternate setting 1");
  if (audio) {
    libusb_control_transfer(audio, 0x40, 0x06, 0, 0, nullptr, 0, 1000);
    constexpr int kPackets = 8;
    std::vector<unsigned char> samples(kPackets * 192, 0x5a);
    libusb_transfer* iso = libusb_alloc_transfer(kPackets);
    libusb_fill_iso_transfer(iso, audio, 0x01, samples.data(), static_cast<int>(samples.size()),
                             kPackets, &record, nullptr, 2000);
    unsigned total = 0;
    for (int i = 0; i < kPackets; ++i) {
      iso->iso_packet_desc[i].length = 100u + 10u * static_cast<unsigned>(i);
      total += iso->iso_packet_desc[i].length;
    }
    events = {};
    check(libusb_submit_transfer(iso) == 0, "submit isochronous OUT");
    run_events(ctx, 1);
    bool packets_ok = iso->status == LIBUSB_TRANSFER_COMPLETED;
    for (int i = 0; i < kPackets; ++i) {
      const auto& p = iso->iso_packet_desc[i];
      packets_ok =
          packets_ok && p.status == LIBUSB_TRANSFER_COMPLETED && p.actual_length == p.length;
    }
    check(packets_ok, "every isochronous OUT packet completed whole");
    unsigned char iso_stats[16];
    check(libusb_control_transfer(audio, 0xc0, 0x05, 0, 0, iso_stats, 16, 1000) == 16 &&
              le64(iso_stats) == kPackets && le64(iso_stats + 8) == total,
          "the device counted 8 packets and their bytes");
    libusb_free_transfer(iso);
    libusb_release_interface(audio, 0);
    libusb_close(audio);
  }
  libusb_exit(ctx);
  std::printf("async semantics: %d failures\n", failures);
  return failures;
}
