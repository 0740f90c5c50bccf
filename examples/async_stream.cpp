// async_stream: streams from the loopback device's source endpoint (or into its sink) with a
// chosen number of asynchronous transfers in flight, checking that every byte follows the
// device's pattern, in order, and reporting the throughput.
//
//   async_stream [in|out] [DEPTH] [TRANSFER_BYTES] [TOTAL_MIB] [VID:PID]
#include <chrono>
#include <cstring>
#include <string>
#include <vector>

#include "example_util.h"

namespace {

struct Stream {
  libusb_device_handle* handle;
  bool in;
  std::size_t size;
  std::uint64_t total;          // bytes to move
  std::uint64_t submitted = 0;  // bytes handed to transfers
  std::uint64_t done = 0;       // bytes completed
  std::uint64_t next_check = 0;
  int in_flight = 0;
  int errors = 0;
};

void LIBUSB_CALL on_done(libusb_transfer* t) {
  auto* s = static_cast<Stream*>(t->user_data);
  auto offset = reinterpret_cast<std::uint64_t*>(t->buffer + s->size);  // where it started
  if (t->status != LIBUSB_TRANSFER_COMPLETED || t->actual_length != static_cast<int>(s->size)) {
    std::fprintf(stderr, "transfer at %llu: %s, %d bytes\n",
                 static_cast<unsigned long long>(*offset), libusb_error_name(t->status),
                 t->actual_length);
    ++s->errors;
  } else if (s->in) {
    // Completions come in submission order, so each continues the pattern where the last ended.
    if (*offset != s->next_check) ++s->errors;
    std::vector<unsigned char> expected(s->size);
    example::fill_pattern(expected.data(), s->size, *offset);
    if (std::memcmp(expected.data(), t->buffer, s->size) != 0) {
      std::fprintf(stderr, "transfer at %llu: data off pattern\n",
                   static_cast<unsigned long long>(*offset));
      ++s->errors;
    }
    s->next_check = *offset + s->size;
  }
  s->done += static_cast<std::uint64_t>(t->actual_length);
  if (s->submitted < s->total && s->errors == 0) {
    *offset = s->submitted;
    if (!s->in) example::fill_pattern(t->buffer, s->size, *offset);
    s->submitted += s->size;
    if (libusb_submit_transfer(t) == 0) return;
    ++s->errors;
  }
  --s->in_flight;
}

}  // namespace

int main(int argc, char** argv) {
  const bool in = argc < 2 || std::strcmp(argv[1], "out") != 0;
  const int depth = argc > 2 ? std::atoi(argv[2]) : 8;
  const std::size_t size = argc > 3 ? std::strtoul(argv[3], nullptr, 10) : 65536;
  const std::uint64_t total = (argc > 4 ? std::strtoull(argv[4], nullptr, 10) : 64) << 20;
  std::uint16_t vid = 0x1209, pid = 0x0001;
  if (depth <= 0 || size == 0 || (argc > 5 && !example::parse_vid_pid(argv[5], vid, pid))) {
    std::fprintf(stderr, "usage: %s [in|out] [DEPTH] [TRANSFER_BYTES] [TOTAL_MIB] [VID:PID]\n",
                 argv[0]);
    return 2;
  }
  example::Context ctx = example::init();
  example::Handle h = example::open(ctx.get(), vid, pid);
  example::check(libusb_claim_interface(h.get(), 0), "libusb_claim_interface");
  example::check(libusb_control_transfer(h.get(), 0x40, 0x06, 0, 0, nullptr, 0, 1000),
                 "RESET_STREAMS");

  Stream s{h.get(), in, size, total / size * size};
  // Each buffer carries, after its data, the stream offset its transfer started at.
  std::vector<std::vector<unsigned char>> buffers(depth, std::vector<unsigned char>(size + 8));
  std::vector<libusb_transfer*> transfers;
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < depth && s.submitted < s.total; ++i) {
    libusb_transfer* t = libusb_alloc_transfer(0);
    auto* offset = reinterpret_cast<std::uint64_t*>(buffers[i].data() + size);
    *offset = s.submitted;
    if (!in) example::fill_pattern(buffers[i].data(), size, *offset);
    libusb_fill_bulk_transfer(t, h.get(), in ? 0x82 : 0x02, buffers[i].data(),
                              static_cast<int>(size), &on_done, &s, 5000);
    example::check(libusb_submit_transfer(t), "libusb_submit_transfer");
    s.submitted += size;
    ++s.in_flight;
    transfers.push_back(t);
  }
  while (s.in_flight > 0) example::check(libusb_handle_events(ctx.get()), "libusb_handle_events");
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  for (libusb_transfer* t : transfers) libusb_free_transfer(t);

  if (!in) {
    unsigned char stats[16];
    example::check(libusb_control_transfer(h.get(), 0xc0, 0x05, 0, 0, stats, 16, 1000),
                   "SINK_STATS");
    std::uint64_t sunk = 0, wrong = 0;
    for (int i = 7; i >= 0; --i) {
      sunk = sunk << 8 | stats[i];
      wrong = wrong << 8 | stats[8 + i];
    }
    if (sunk != s.done || wrong != 0) {
      std::fprintf(stderr, "the sink got %llu bytes, %llu off pattern\n",
                   static_cast<unsigned long long>(sunk), static_cast<unsigned long long>(wrong));
      ++s.errors;
    }
  }
  std::printf("%s: %llu bytes in %d-deep %zu-byte transfers, %.1f MB/s, %s\n", in ? "in" : "out",
              static_cast<unsigned long long>(s.done), depth, size, s.done / 1e6 / seconds,
              s.errors == 0 ? "every byte checked" : "ERRORS");
  libusb_release_interface(h.get(), 0);
  return s.errors == 0 ? 0 : 1;
}
