#include "bot.h"

#include <cstring>

namespace lab {

namespace {

constexpr int kTimeoutMs = 20000;  // generous: the device is emulated, under TCG, maybe remote
constexpr std::uint32_t kCbwSignature = 0x43425355;  // "USBC"
constexpr std::uint32_t kCswSignature = 0x53425355;  // "USBS"

void put_le32(unsigned char* p, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<unsigned char>(v >> (8 * i));
}
std::uint32_t get_le32(const unsigned char* p) {
  return p[0] | (p[1] << 8) | (p[2] << 16) | (static_cast<std::uint32_t>(p[3]) << 24);
}
std::uint32_t get_be32(const unsigned char* p) {
  return (static_cast<std::uint32_t>(p[0]) << 24) | (p[1] << 16) | (p[2] << 8) | p[3];
}

std::vector<std::uint8_t> rw10(std::uint8_t opcode, std::uint32_t lba, std::uint16_t blocks) {
  return {opcode,
          0,
          static_cast<std::uint8_t>(lba >> 24),
          static_cast<std::uint8_t>(lba >> 16),
          static_cast<std::uint8_t>(lba >> 8),
          static_cast<std::uint8_t>(lba),
          0,
          static_cast<std::uint8_t>(blocks >> 8),
          static_cast<std::uint8_t>(blocks),
          0};
}

}  // namespace

std::uint32_t BulkOnly::wrap(const std::vector<std::uint8_t>& cdb, std::uint32_t length, bool in,
                             unsigned char* cbw) {
  std::memset(cbw, 0, 31);
  const std::uint32_t tag = tag_++;
  put_le32(cbw, kCbwSignature);
  put_le32(cbw + 4, tag);
  put_le32(cbw + 8, length);
  cbw[12] = in ? 0x80 : 0x00;
  cbw[13] = 0;  // LUN
  cbw[14] = static_cast<unsigned char>(cdb.size());
  std::memcpy(cbw + 15, cdb.data(), cdb.size());
  return tag;
}

bool BulkOnly::unwrap(const unsigned char* csw, int length, std::uint32_t tag, int& status) {
  if (length != 13 || get_le32(csw) != kCswSignature || get_le32(csw + 4) != tag) return false;
  status = csw[12];
  return true;
}

std::vector<std::uint8_t> BulkOnly::read10_cdb(std::uint32_t lba, std::uint16_t blocks) {
  return rw10(0x28, lba, blocks);
}

int BulkOnly::transfer(std::uint8_t endpoint, unsigned char* data, int length, int* done,
                       int timeout) {
  int r = libusb_bulk_transfer(usb_.handle.get(), endpoint, data, length, done, timeout);
  if (r == LIBUSB_ERROR_PIPE) {
    // A stalled data or status stage: clear it and let the caller read the CSW (BOT 6.7.2).
    libusb_clear_halt(usb_.handle.get(), endpoint);
  }
  return r;
}

int BulkOnly::command(const std::vector<std::uint8_t>& cdb, unsigned char* data,
                      std::uint32_t length, bool in) {
  unsigned char cbw[31];
  const std::uint32_t tag = wrap(cdb, length, in, cbw);
  int done = 0;
  if (int r = transfer(usb_.bulk_out, cbw, sizeof cbw, &done, kTimeoutMs); r != 0) {
    error_ = std::string("CBW: ") + libusb_error_name(r);
    return r;
  }
  if (length > 0) {
    const std::uint8_t ep = in ? usb_.bulk_in : usb_.bulk_out;
    const int r = transfer(ep, data, static_cast<int>(length), &done, kTimeoutMs);
    if (r != 0 && r != LIBUSB_ERROR_PIPE) {
      error_ = std::string("data stage: ") + libusb_error_name(r);
      return r;
    }
  }
  unsigned char csw[13] = {};
  int r = transfer(usb_.bulk_in, csw, sizeof csw, &done, kTimeoutMs);
  if (r == LIBUSB_ERROR_PIPE) r = transfer(usb_.bulk_in, csw, sizeof csw, &done, kTimeoutMs);
  if (r != 0) {
    error_ = std::string("CSW: ") + libusb_error_name(r);
    return r;
  }
  int status = 0;
  if (!unwrap(csw, done, tag, status)) {
    error_ = "CSW: not a valid status wrapper for this command";
    return LIBUSB_ERROR_IO;
  }
  if (status != 0) error_ = "CSW status " + std::to_string(status);
  return status;
}

void BulkOnly::reset_recovery() {
  constexpr std::uint8_t kClassOutInterface = 0x21, kMassStorageReset = 0xff;
  check(libusb_control_transfer(usb_.handle.get(), kClassOutInterface, kMassStorageReset, 0,
                                static_cast<std::uint16_t>(usb_.number), nullptr, 0, kTimeoutMs),
        "Bulk-Only Mass Storage Reset");
  check(libusb_clear_halt(usb_.handle.get(), usb_.bulk_in), "clear halt (bulk IN)");
  check(libusb_clear_halt(usb_.handle.get(), usb_.bulk_out), "clear halt (bulk OUT)");
}

void BulkOnly::require(int status, const char* what) {
  if (status != 0) fail(std::string(what) + " failed: " + error_);
}

std::string BulkOnly::inquiry() {
  unsigned char data[36] = {};
  require(command({0x12, 0, 0, 0, sizeof data, 0}, data, sizeof data, true), "INQUIRY");
  auto text = [&](int from, int to) {
    std::string s(reinterpret_cast<const char*>(data) + from, static_cast<std::size_t>(to - from));
    while (!s.empty() && s.back() == ' ') s.pop_back();
    return s;
  };
  return text(8, 16) + " " + text(16, 32) + " " + text(32, 36);
}

void BulkOnly::wait_until_ready() {
  // A fresh device reports UNIT ATTENTION (power on, medium changed) once: REQUEST SENSE
  // clears it.
  for (int attempt = 0; attempt < 5; ++attempt) {
    if (command({0x00, 0, 0, 0, 0, 0}, nullptr, 0, false) == 0) return;
    unsigned char sense[18] = {};
    require(command({0x03, 0, 0, 0, sizeof sense, 0}, sense, sizeof sense, true), "REQUEST SENSE");
  }
  fail("TEST UNIT READY: the device never became ready");
}

void BulkOnly::read_capacity(std::uint32_t& blocks, std::uint32_t& block_size) {
  unsigned char data[8] = {};
  require(command({0x25, 0, 0, 0, 0, 0, 0, 0, 0, 0}, data, sizeof data, true), "READ CAPACITY");
  blocks = get_be32(data) + 1;  // the device reports its last LBA
  block_size = get_be32(data + 4);
}

void BulkOnly::read10(std::uint32_t lba, std::uint16_t blocks, std::uint32_t block_size,
                      unsigned char* into) {
  require(command(read10_cdb(lba, blocks), into, blocks * block_size, true), "READ(10)");
}

void BulkOnly::write10(std::uint32_t lba, std::uint16_t blocks, std::uint32_t block_size,
                       const unsigned char* from) {
  // libusb takes a non-const buffer for both directions; an OUT transfer only reads it.
  require(command(rw10(0x2a, lba, blocks), const_cast<unsigned char*>(from), blocks * block_size,
                  false),
          "WRITE(10)");
}

}  // namespace lab
