// Measures how fast a USB mass-storage device (Bulk-Only Transport) reads: READ(10) commands
// of CHUNK KiB each, synchronous libusb bulk transfers, MIB MiB in all from LBA 0 onwards
// (wrapping at the end of the medium). Prints "read N MiB in T s: X MB/s", then the CPU time it
// used while reading ("cpu: user U s, system S s").
// Also the lab's "agent lost" check: with a large MIB it reads until the device fails, and
// says how (exit status 1). With BUS, only a device on that bus will do. With --queued PIECES,
// each command's CBW and data stage are in flight together, the data in PIECES transfers (libusb's
// asynchronous API, see queued_read.h), instead of three synchronous transfers one after another.
//
//   msc_read [--queued PIECES] VID:PID MIB [CHUNK_KIB [BUS]]
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "bot.h"
#include "queued_read.h"

int main(int argc, char** argv) {
  int pieces = 0;  // 0: synchronous
  if (argc > 2 && std::strcmp(argv[1], "--queued") == 0) {
    pieces = std::stoi(argv[2]);
    argc -= 2;
    argv += 2;
  }
  if (argc < 3 || argc > 5 || pieces < 0) {
    std::fprintf(stderr, "usage: msc_read [--queued PIECES] VID:PID MIB [CHUNK_KIB [BUS]]\n");
    return 2;
  }
  std::uint16_t vid, pid;
  lab::parse_vid_pid(argv[1], vid, pid);
  const std::uint64_t total = std::stoull(argv[2]) << 20;
  const std::uint32_t chunk = static_cast<std::uint32_t>(argc > 3 ? std::stoul(argv[3]) : 128)
                              << 10;

  lab::Context ctx = lab::init();
  const int bus = argc > 4 ? std::stoi(argv[4]) : -1;
  lab::Interface usb = lab::open_interface(ctx.get(), vid, pid, LIBUSB_CLASS_MASS_STORAGE, -1, bus);
  lab::BulkOnly bot(usb);
  bot.reset_recovery();
  bot.wait_until_ready();
  std::uint32_t blocks = 0, block_size = 0;
  bot.read_capacity(blocks, block_size);
  if (block_size == 0 || chunk % block_size != 0 || chunk / block_size > 0xffff ||
      chunk / block_size > blocks) {
    lab::fail("CHUNK_KIB does not fit the device's blocks");
  }
  const auto per_read = static_cast<std::uint16_t>(chunk / block_size);
  std::vector<unsigned char> buffer(chunk);
  std::unique_ptr<lab::QueuedRead> queued;
  if (pieces > 0) queued = std::make_unique<lab::QueuedRead>(bot, ctx.get(), chunk, pieces);
  std::printf("reading\n");
  std::fflush(stdout);

  const auto start = std::chrono::steady_clock::now();
  const lab::CpuTime cpu_start = lab::CpuTime::now();
  std::uint32_t lba = 0;
  for (std::uint64_t done = 0; done < total; done += chunk) {
    if (lba + per_read > blocks) lba = 0;
    if (queued) {
      queued->read10(lba, per_read, block_size, buffer.data());
    } else {
      bot.read10(lba, per_read, block_size, buffer.data());
    }
    lba += per_read;
  }
  const double seconds = lab::seconds_since(start);
  std::printf("read %llu MiB in %.3f s: %.1f MB/s\n", static_cast<unsigned long long>(total >> 20),
              seconds, static_cast<double>(total) / seconds / 1e6);
  lab::CpuTime::print_since(cpu_start);
  return 0;
}
