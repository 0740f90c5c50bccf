// A plain libusb program with several threads doing transfers on different endpoints of the
// loopback device at once: the source, the sink, the loopback pair and control requests. Each
// thread checks its data. Exit status: 0 when every thread succeeded.
#include <libusb.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <thread>
#include <vector>

#include "common/loopback_device.h"

namespace loopback_device = usbnet::loopback_device;

namespace {

std::atomic<int> failures{0};

void fail(const char* what, int r) {
  std::printf("FAIL %s: %s\n", what, libusb_error_name(r));
  ++failures;
}

void pattern(unsigned char* p, std::size_t n, std::uint64_t offset) {
  for (std::size_t i = 0; i < n; ++i) p[i] = loopback_device::pattern_byte(offset + i);
}

}  // namespace

int main() {
  libusb_context* ctx = nullptr;
  if (libusb_init(&ctx) != 0) return 100;
  libusb_device_handle* h =
      libusb_open_device_with_vid_pid(ctx, loopback_device::kVendorId, loopback_device::kProductId);
  if (!h || libusb_claim_interface(h, 0) != 0) return 101;
  libusb_control_transfer(h, 0x40, 0x06, 0, 0, nullptr, 0, 1000);  // RESET_STREAMS
  constexpr int kRounds = 200;
  std::vector<std::thread> threads;
  threads.emplace_back([&] {  // the source
    std::vector<unsigned char> got(8192), want(8192);
    for (int i = 0; i < kRounds; ++i) {
      int n = 0;
      const int r = libusb_bulk_transfer(h, 0x82, got.data(), 8192, &n, 5000);
      pattern(want.data(), 8192, static_cast<std::uint64_t>(i) * 8192);
      if (r != 0 || n != 8192 || got != want) return fail("source", r);
    }
  });
  threads.emplace_back([&] {  // the sink
    std::vector<unsigned char> out(4096);
    for (int i = 0; i < kRounds; ++i) {
      pattern(out.data(), out.size(), static_cast<std::uint64_t>(i) * 4096);
      int n = 0;
      const int r = libusb_bulk_transfer(h, 0x02, out.data(), 4096, &n, 5000);
      if (r != 0 || n != 4096) return fail("sink", r);
    }
  });
  threads.emplace_back([&] {  // loopback, on its own pair of endpoints
    for (int i = 0; i < kRounds; ++i) {
      unsigned char out[300], in[512];
      std::memset(out, i, sizeof out);
      int n = 0;
      int r = libusb_bulk_transfer(h, 0x01, out, sizeof out, &n, 5000);
      if (r == 0) r = libusb_bulk_transfer(h, 0x81, in, sizeof in, &n, 5000);
      if (r != 0 || n != 300 || std::memcmp(in, out, 300) != 0) return fail("loopback", r);
    }
  });
  threads.emplace_back([&] {  // control requests, interleaved with all of the above
    for (int i = 0; i < kRounds; ++i) {
      unsigned char status[2];
      const int r = libusb_control_transfer(h, 0x80, 0, 0, 0, status, 2, 5000);
      if (r != 2) return fail("control", r);
    }
  });
  for (auto& t : threads) t.join();
  unsigned char stats[16];
  const int r = libusb_control_transfer(h, 0xc0, 0x05, 0, 0, stats, 16, 1000);
  std::uint64_t bytes = 0, wrong = 0;
  for (int i = 7; i >= 0; --i) {
    bytes = bytes << 8 | stats[i];
    wrong = wrong << 8 | stats[8 + i];
  }
  if (r != 16 || bytes != 4096u * kRounds || wrong != 0) {
    std::printf("FAIL sink stats: %llu bytes, %llu wrong\n", static_cast<unsigned long long>(bytes),
                static_cast<unsigned long long>(wrong));
    ++failures;
  }
  libusb_release_interface(h, 0);
  libusb_close(h);
  libusb_exit(ctx);
  std::printf("threads: %d failure(s)\n", failures.load());
  return failures.load();
}
