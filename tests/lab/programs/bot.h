// USB mass storage, Bulk-Only Transport (BOT): a SCSI command travels as a 31-byte Command
// Block Wrapper on the bulk OUT endpoint, its data on bulk IN or OUT, and its result comes back
// as a 13-byte Command Status Wrapper on bulk IN. Plain synchronous libusb bulk transfers.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "lab_util.h"

namespace lab {

class BulkOnly {
 public:
  explicit BulkOnly(Interface& usb) : usb_(usb) {}

  // Runs one command. `data` is read into (IN) or sent (OUT), `in` says which; an empty data
  // stage for commands without one. Returns the CSW status (0 passed, 1 failed, 2 phase error)
  // or a negative libusb error, with the reason in error().
  int command(const std::vector<std::uint8_t>& cdb, unsigned char* data, std::uint32_t length,
              bool in);
  const std::string& error() const { return error_; }

  // Bulk-Only Mass Storage Reset and clearing both endpoints' halts (BOT 5.3.4): brings the
  // device back to waiting for a command whatever an earlier user left it in the middle of.
  void reset_recovery();

  // The commands the lab uses; each exits the program with the reason when it fails.
  std::string inquiry();    // "vendor product revision"
  void wait_until_ready();  // TEST UNIT READY (+ REQUEST SENSE)
  void read_capacity(std::uint32_t& blocks, std::uint32_t& block_size);  // READ CAPACITY(10)
  void read10(std::uint32_t lba, std::uint16_t blocks, std::uint32_t block_size,
              unsigned char* into);
  void write10(std::uint32_t lba, std::uint16_t blocks, std::uint32_t block_size,
               const unsigned char* from);

  // The wrappers command() uses, for a program that runs a command's stages itself (all in
  // flight at once, through libusb's asynchronous API): the 31-byte CBW of `cdb` with a fresh
  // tag (returned), and whether `csw` is the 13-byte status wrapper of `tag` (with its status).
  std::uint32_t wrap(const std::vector<std::uint8_t>& cdb, std::uint32_t length, bool in,
                     unsigned char* cbw);
  static bool unwrap(const unsigned char* csw, int length, std::uint32_t tag, int& status);
  static std::vector<std::uint8_t> read10_cdb(std::uint32_t lba, std::uint16_t blocks);
  Interface& interface() { return usb_; }

 private:
  int transfer(std::uint8_t endpoint, unsigned char* data, int length, int* done, int timeout);
  void require(int status, const char* what);

  Interface& usb_;
  std::uint32_t tag_ = 1;
  std::string error_;
};

}  // namespace lab
