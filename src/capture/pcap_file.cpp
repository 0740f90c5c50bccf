#include "capture/pcap_file.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>

#include "common/log.h"

namespace usbnet::capture {

namespace {

std::string errno_text() { return std::strerror(errno); }

bool write_all(int fd, wire::ByteView bytes) {
  // A regular file takes an O_APPEND write whole; a short write (a full disk) is an error.
  const ssize_t n = ::write(fd, bytes.data(), bytes.size());
  return n == static_cast<ssize_t>(bytes.size());
}

// Where the last whole record of the capture in `fd` (of `size` bytes) ends.
std::uint64_t whole_records_end(int fd, std::uint64_t size) {
  std::uint64_t at = kPcapFileHeaderLength;
  for (;;) {
    std::uint8_t header[kPcapRecordHeaderLength];
    if (at + sizeof header > size || ::pread(fd, header, sizeof header, static_cast<off_t>(at)) !=
                                         static_cast<ssize_t>(sizeof header)) {
      return at;
    }
    const std::uint32_t captured = header[8] | header[9] << 8 | header[10] << 16 |
                                   static_cast<std::uint32_t>(header[11]) << 24;
    if (captured > kSnapLength || at + sizeof header + captured > size) return at;
    at += sizeof header + captured;
  }
}

}  // namespace

Expected<std::unique_ptr<PcapFile>, std::string> PcapFile::open(const std::string& path,
                                                                std::uint64_t max_bytes,
                                                                std::string who) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
  if (fd < 0) return Unexpected<std::string>{who + ": cannot open '" + path + "': " + errno_text()};
  auto fail = [&](std::string why) {
    ::close(fd);
    return Unexpected<std::string>{who + ": '" + path + "' " + why};
  };
  // Another process may be creating the same file: the check and the header are one step.
  if (::flock(fd, LOCK_EX) != 0) return fail("cannot be locked: " + errno_text());
  struct stat st {};
  if (::fstat(fd, &st) != 0) return fail("cannot be examined: " + errno_text());
  if (!S_ISREG(st.st_mode)) return fail("is not a regular file");
  const auto header = pcap_file_header();
  std::uint64_t size = static_cast<std::uint64_t>(st.st_size);
  if (size == 0) {
    if (!write_all(fd, header)) return fail("cannot be written: " + errno_text());
    size = header.size();
  } else {
    std::array<std::uint8_t, kPcapFileHeaderLength> existing{};
    const int rd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    const bool same =
        rd >= 0 &&
        ::pread(rd, existing.data(), existing.size(), 0) == static_cast<ssize_t>(existing.size()) &&
        existing == header;
    if (!same) {
      if (rd >= 0) ::close(rd);
      return fail("exists and is not a usbmon capture of usbnet's; not capturing");
    }
    // A program killed in the middle of a write() may have left the last record cut (the
    // kernel stops a multi-page write between pages for SIGKILL): the capture goes on after
    // the last whole record.
    const std::uint64_t whole = whole_records_end(rd, size);
    ::close(rd);
    if (whole != size) {
      if (::ftruncate(fd, static_cast<off_t>(whole)) != 0) {
        return fail("ends in a cut record that cannot be removed: " + errno_text());
      }
      log::warn(
          "{}: '{}' ended in a record cut short ({} bytes); continuing after the last whole "
          "record",
          who, path, size - whole);
      size = whole;
    }
  }
  ::flock(fd, LOCK_UN);
  return std::unique_ptr<PcapFile>(new PcapFile(fd, path, size, max_bytes, std::move(who)));
}

PcapFile::PcapFile(int fd, std::string path, std::uint64_t size, std::uint64_t max_bytes,
                   std::string who)
    : fd_(fd), path_(std::move(path)), size_(size), max_bytes_(max_bytes), who_(std::move(who)) {}

PcapFile::~PcapFile() { ::close(fd_); }

bool PcapFile::active() const {
  std::lock_guard lock(mutex_);
  return !stopped_;
}

bool PcapFile::write(wire::ByteView records) {
  std::lock_guard lock(mutex_);
  if (stopped_) return false;
  if (size_ + records.size() > max_bytes_) {
    stopped_ = true;
    log::warn("{}: '{}' reached its limit of {} bytes; no more URBs are captured", who_, path_,
              max_bytes_);
    return false;
  }
  if (!write_all(fd_, records)) {
    stopped_ = true;
    log::error("{}: writing '{}' failed ({}); no more URBs are captured", who_, path_,
               errno_text());
    return false;
  }
  size_ += records.size();
  return true;
}

Timestamp PcapFile::now() {
  timespec t{};
  ::clock_gettime(CLOCK_REALTIME, &t);
  return Timestamp{static_cast<std::int64_t>(t.tv_sec),
                   static_cast<std::int32_t>(t.tv_nsec / 1000)};
}

}  // namespace usbnet::capture
