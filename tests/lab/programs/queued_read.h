// READ(10) with the command's stages in flight together, through libusb's asynchronous API:
// the CBW on bulk OUT and the data stage as several transfers on bulk IN, all submitted at
// once, in that order; the CSW once the data is in. A command then costs the link two round
// trips instead of three, and the device's data flows back while later pieces are still being
// read. Bulk-Only Transport runs one command at a time (the device takes the next CBW only
// after it has sent the CSW), so pieces + 1 transfers is about as much as it lets a program keep
// in flight. (The CSW is not queued behind the data: QEMU's usb-storage then completes the
// command while that transfer waits, and never answers it.)
#pragma once

#include <cstdint>
#include <vector>

#include "bot.h"

namespace lab {

class QueuedRead {
 public:
  // Each READ(10) of `chunk` bytes moves its data in `pieces` transfers; exits the program if
  // they would not be whole packets of 1024 bytes (then none ends short).
  QueuedRead(BulkOnly& bot, libusb_context* ctx, std::uint32_t chunk, int pieces);
  ~QueuedRead();
  QueuedRead(const QueuedRead&) = delete;
  QueuedRead& operator=(const QueuedRead&) = delete;

  // Reads `blocks` blocks (`chunk` bytes) into `into`; exits the program with the reason if any
  // stage fails or the CSW does not say the command passed.
  void read10(std::uint32_t lba, std::uint16_t blocks, std::uint32_t block_size,
              unsigned char* into);

  struct Stage {
    libusb_transfer* transfer = nullptr;
    bool done = false;
  };

 private:
  BulkOnly& bot_;
  libusb_context* ctx_;
  std::vector<Stage> stages_;  // CBW, the data pieces, CSW
  std::uint32_t piece_;
  unsigned char cbw_[31] = {};
  unsigned char csw_[13] = {};
};

}  // namespace lab
