// Checks a USB mass-storage device (Bulk-Only Transport) with plain libusb bulk transfers:
// INQUIRY, TEST UNIT READY, READ CAPACITY(10), then WRITE(10) of a known pattern and READ(10)
// of the same blocks, compared by CRC-32. It overwrites those blocks: use a scratch device.
// With SAVE_FILE, what it wrote is also saved there (to compare with the medium itself).
//
//   msc_check VID:PID [LBA] [BLOCKS] [SAVE_FILE]
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "bot.h"

int main(int argc, char** argv) {
  if (argc < 2 || argc > 5) {
    std::fprintf(stderr, "usage: msc_check VID:PID [LBA] [BLOCKS] [SAVE_FILE]\n");
    return 2;
  }
  std::uint16_t vid, pid;
  lab::parse_vid_pid(argv[1], vid, pid);
  const auto lba = static_cast<std::uint32_t>(argc > 2 ? std::stoul(argv[2]) : 100);
  const auto count = static_cast<std::uint16_t>(argc > 3 ? std::stoul(argv[3]) : 64);

  lab::Context ctx = lab::init();
  lab::Interface usb = lab::open_interface(ctx.get(), vid, pid, LIBUSB_CLASS_MASS_STORAGE);
  if (usb.descriptor->bInterfaceProtocol != 0x50 || !usb.bulk_in || !usb.bulk_out) {
    lab::fail("not a Bulk-Only Transport interface with two bulk endpoints");
  }
  lab::BulkOnly bot(usb);
  bot.reset_recovery();
  std::printf("INQUIRY: %s\n", bot.inquiry().c_str());
  bot.wait_until_ready();
  std::uint32_t blocks = 0, block_size = 0;
  bot.read_capacity(blocks, block_size);
  std::printf("READ CAPACITY: %u blocks of %u bytes\n", blocks, block_size);
  if (block_size == 0 || block_size > 4096 || lba + count > blocks) {
    lab::fail("the capacity does not fit the blocks to test");
  }

  // Different content on every run, so stale data from an earlier run cannot pass.
  std::vector<unsigned char> written(std::size_t{count} * block_size);
  std::uint32_t seed =
      static_cast<std::uint32_t>(std::chrono::steady_clock::now().time_since_epoch().count());
  for (auto& byte : written) {
    seed = seed * 1664525u + 1013904223u;
    byte = static_cast<unsigned char>(seed >> 24);
  }
  bot.write10(lba, count, block_size, written.data());
  std::vector<unsigned char> read(written.size());
  bot.read10(lba, count, block_size, read.data());
  const std::uint32_t crc_written = lab::crc32(written.data(), written.size());
  const std::uint32_t crc_read = lab::crc32(read.data(), read.size());
  std::printf("WRITE(10) %u blocks at LBA %u: crc32 %08x\n", count, lba, crc_written);
  std::printf("READ(10)  %u blocks at LBA %u: crc32 %08x\n", count, lba, crc_read);
  if (crc_read != crc_written || read != written) lab::fail("the data read back differs");
  if (argc > 4) {
    std::ofstream save(argv[4], std::ios::binary);
    save.write(reinterpret_cast<const char*>(written.data()),
               static_cast<std::streamsize>(written.size()));
    if (!save.flush()) lab::fail(std::string("cannot write ") + argv[4]);
  }
  std::printf("mass storage ok\n");
  return 0;
}
