#include "bench/usb_measure.h"
#include "bench/warm_up.h"
#include "common/loopback_device.h"

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace usbnet::bench {

namespace {
using Clock = std::chrono::steady_clock;
using loopback_device::kPatternPeriod, loopback_device::kReadBuffer, loopback_device::kResetStreams,
    loopback_device::kSinkStats, loopback_device::kWriteBuffer;
constexpr std::uint8_t kVendorOut = 0x40, kVendorIn = 0xc0;
constexpr std::uint8_t kSource = loopback_device::kSourceIn, kSink = loopback_device::kSinkOut;

void require(int r, const char* what) {
  if (r < 0) throw std::runtime_error(std::string(what) + ": " + libusb_error_name(r));
}
}  // namespace

std::chrono::nanoseconds control_round_trip(libusb_device_handle* h, std::size_t size,
                                            int iterations) {
  std::vector<unsigned char> buffer(4096, 0xa5);
  require(libusb_control_transfer(h, kVendorOut, kWriteBuffer, 0, 0, buffer.data(), 4096, 1000),
          "WRITE_BUFFER");
  std::vector<std::chrono::nanoseconds> times;
  const int warm_up = warm_up_rounds(iterations);
  for (int i = 0; i < iterations + warm_up; ++i) {
    const auto start = Clock::now();
    const int r = libusb_control_transfer(h, kVendorIn, kReadBuffer, 0, 0, buffer.data(),
                                          static_cast<std::uint16_t>(size), 1000);
    if (r != static_cast<int>(size)) require(r < 0 ? r : LIBUSB_ERROR_IO, "READ_BUFFER");
    if (i >= warm_up) times.push_back(Clock::now() - start);
  }
  std::nth_element(times.begin(), times.begin() + times.size() / 2, times.end());
  return times[times.size() / 2];
}

double sync_bulk_in(libusb_device_handle* h, std::size_t size, std::size_t total) {
  std::vector<unsigned char> buffer(size);
  std::size_t bytes = 0;
  const auto start = Clock::now();
  while (bytes < total) {
    int n = 0;
    require(libusb_bulk_transfer(h, kSource, buffer.data(), static_cast<int>(size), &n, 5000),
            "bulk IN");
    bytes += static_cast<std::size_t>(n);
  }
  return static_cast<double>(bytes) / std::chrono::duration<double>(Clock::now() - start).count();
}

namespace {
struct Stream {
  std::size_t to_submit = 0;  // transfers not yet submitted
  std::size_t bytes = 0;
  int in_flight = 0;
  int errors = 0;
  // OUT: the device's pattern (loopback_device::pattern_byte), one period longer than a
  // transfer, so that every transfer sends a slice of it that continues where the previous
  // one ended, without a copy; `offset` is where the next transfer starts in the stream.
  std::vector<unsigned char> pattern;
  std::uint64_t offset = 0;

  unsigned char* next_out(std::size_t size) {
    unsigned char* data = pattern.data() + offset % kPatternPeriod;
    offset += size;
    return data;
  }
};

void LIBUSB_CALL on_done(libusb_transfer* t) {
  auto* s = static_cast<Stream*>(t->user_data);
  if (t->status == LIBUSB_TRANSFER_COMPLETED) {
    s->bytes += static_cast<std::size_t>(t->actual_length);
  } else {
    ++s->errors;
  }
  if (s->to_submit > 0 && t->status == LIBUSB_TRANSFER_COMPLETED) {
    if (!s->pattern.empty()) t->buffer = s->next_out(static_cast<std::size_t>(t->length));
    if (libusb_submit_transfer(t) == 0) {
      --s->to_submit;
      return;
    }
  }
  --s->in_flight;
}

std::uint64_t le64(const unsigned char* p) {
  std::uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}
}  // namespace

double async_bulk(libusb_context* ctx, libusb_device_handle* h, bool in, std::size_t size,
                  int depth, std::size_t total) {
  Stream stream;
  stream.to_submit = total / size;
  std::vector<std::vector<unsigned char>> buffers;
  if (in) {
    buffers.assign(depth, std::vector<unsigned char>(size));
  } else {
    // The sink checks every byte against its pattern; it starts afresh.
    require(libusb_control_transfer(h, kVendorOut, kResetStreams, 0, 0, nullptr, 0, 1000),
            "RESET_STREAMS");
    stream.pattern.resize(size + kPatternPeriod);
    for (std::size_t i = 0; i < stream.pattern.size(); ++i) {
      stream.pattern[i] = loopback_device::pattern_byte(i);
    }
  }
  std::vector<libusb_transfer*> transfers;
  const auto start = Clock::now();
  for (int i = 0; i < depth && stream.to_submit > 0; ++i, --stream.to_submit) {
    libusb_transfer* t = libusb_alloc_transfer(0);
    libusb_fill_bulk_transfer(t, h, in ? kSource : kSink,
                              in ? buffers[i].data() : stream.next_out(size),
                              static_cast<int>(size), &on_done, &stream, 5000);
    require(libusb_submit_transfer(t), "submit");
    ++stream.in_flight;
    transfers.push_back(t);
  }
  while (stream.in_flight > 0) {
    timeval tv{1, 0};
    require(libusb_handle_events_timeout_completed(ctx, &tv, nullptr), "handle events");
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  for (libusb_transfer* t : transfers) libusb_free_transfer(t);
  if (stream.errors > 0) throw std::runtime_error("async transfers failed");
  if (!in) {
    unsigned char stats[16];
    require(libusb_control_transfer(h, kVendorIn, kSinkStats, 0, 0, stats, 16, 1000), "SINK_STATS");
    if (le64(stats) != stream.bytes || le64(stats + 8) != 0) {
      throw std::runtime_error("the sink did not get the stream it expects");
    }
  }
  return static_cast<double>(stream.bytes) / seconds;
}

}  // namespace usbnet::bench
