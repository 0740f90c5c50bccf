// bulk_loopback: bulk transfers on the loopback device (1209:0001 by default). Random-sized
// buffers go out on endpoint 0x01 and must come back unchanged on 0x81 (crc32 compared); the
// source endpoint's pattern is checked across transfers; the sink counts what it swallowed.
//
//   bulk_loopback [VID:PID] [ROUNDS]
#include <chrono>
#include <random>
#include <vector>

#include "example_util.h"

namespace {

// bmRequestType: vendor request to the device, host to device (0x40) or device to host (0xc0).
constexpr std::uint8_t kVendorOut = 0x40;
constexpr std::uint8_t kVendorIn = 0xc0;
constexpr std::uint8_t kSinkStats = 0x05, kResetStreams = 0x06;
constexpr unsigned kTimeout = 5000;

std::uint64_t le64(const unsigned char* p) {
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = v << 8 | p[i];
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  std::uint16_t vid = 0x1209, pid = 0x0001;
  int rounds = 100;
  if ((argc > 1 && !example::parse_vid_pid(argv[1], vid, pid)) ||
      (argc > 2 && (rounds = std::atoi(argv[2])) <= 0)) {
    std::fprintf(stderr, "usage: %s [VID:PID] [ROUNDS]\n", argv[0]);
    return 2;
  }
  example::Context ctx = example::init();
  example::Handle h = example::open(ctx.get(), vid, pid);
  libusb_set_auto_detach_kernel_driver(h.get(), 1);
  example::check(libusb_claim_interface(h.get(), 0), "libusb_claim_interface");
  example::check(
      libusb_control_transfer(h.get(), kVendorOut, kResetStreams, 0, 0, nullptr, 0, 1000),
      "RESET_STREAMS");

  // Loopback: what goes out comes back.
  std::mt19937 random(2026);
  std::uint64_t bytes = 0;
  const auto start = std::chrono::steady_clock::now();
  for (int round = 0; round < rounds; ++round) {
    const int size = 1 + static_cast<int>(random() % 65536);
    std::vector<unsigned char> out(size), in((size + 511) / 512 * 512);
    for (auto& b : out) b = static_cast<unsigned char>(random());
    int sent = 0, received = 0;
    example::check(libusb_bulk_transfer(h.get(), 0x01, out.data(), size, &sent, kTimeout),
                   "bulk OUT 0x01");
    example::check(libusb_bulk_transfer(h.get(), 0x81, in.data(), static_cast<int>(in.size()),
                                        &received, kTimeout),
                   "bulk IN 0x81");
    if (sent != size || received != size ||
        example::crc32(out.data(), out.size()) != example::crc32(in.data(), received)) {
      std::fprintf(stderr, "round %d: sent %d of %d bytes, got %d back, data %s\n", round, sent,
                   size, received,
                   received == size && example::crc32(out.data(), out.size()) !=
                                           example::crc32(in.data(), received)
                       ? "differs"
                       : "short");
      return 1;
    }
    bytes += 2 * static_cast<std::uint64_t>(size);
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("loopback: %d rounds OK, %.1f MB moved, %.1f MB/s\n", rounds, bytes / 1e6,
              bytes / 1e6 / seconds);

  // Source: the pattern continues from one transfer to the next.
  std::vector<unsigned char> chunk(65536), expected(65536);
  std::uint64_t offset = 0;
  for (int i = 0; i < 10; ++i) {
    int received = 0;
    example::check(libusb_bulk_transfer(h.get(), 0x82, chunk.data(), 65536, &received, kTimeout),
                   "bulk IN 0x82");
    example::fill_pattern(expected.data(), 65536, offset);
    if (received != 65536 || chunk != expected) {
      std::fprintf(stderr, "source transfer %d: %d bytes, pattern %s\n", i, received,
                   chunk == expected ? "ok" : "wrong");
      return 1;
    }
    offset += 65536;
  }
  std::printf("source: 10 transfers, pattern OK\n");

  // Sink: swallows the pattern and counts it.
  for (int i = 0; i < 10; ++i) {
    example::fill_pattern(chunk.data(), 65536, static_cast<std::uint64_t>(i) * 65536);
    int sent = 0;
    example::check(libusb_bulk_transfer(h.get(), 0x02, chunk.data(), 65536, &sent, kTimeout),
                   "bulk OUT 0x02");
  }
  unsigned char stats[16];
  example::check(libusb_control_transfer(h.get(), kVendorIn, kSinkStats, 0, 0, stats, 16, 1000),
                 "SINK_STATS");
  const std::uint64_t sunk = le64(stats), wrong = le64(stats + 8);
  std::printf("sink: %llu bytes received, %llu off pattern\n",
              static_cast<unsigned long long>(sunk), static_cast<unsigned long long>(wrong));
  libusb_release_interface(h.get(), 0);
  return sunk == 655360 && wrong == 0 ? 0 : 1;
}
