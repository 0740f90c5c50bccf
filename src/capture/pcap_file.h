// A pcap file of usbmon records that survives the program being killed: every record goes to
// the file at once, in one write() on a descriptor opened with O_APPEND, with no buffer in the
// program to lose, so a killed program's capture holds every record it had written. (One
// thing only the kernel decides: SIGKILL stops a write() of several pages between two pages,
// so the very last record of a killed program may be cut short; Wireshark then reads every
// record before it and says so, and the next program to continue the capture removes the cut
// record first.) Several processes may append to one file (a program that forks, or several
// programs with the same USBNET_PCAP): an existing capture of the same kind is continued,
// anything else is refused. Bounded: once the file would grow past `max_bytes`, capturing
// stops with one warning. Thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "capture/usbmon.h"
#include "usbnet/expected.h"

namespace usbnet::capture {

class PcapFile {
 public:
  // Opens (or creates) `path`; `who` names the setting in messages ("USBNET_PCAP", "--pcap").
  static Expected<std::unique_ptr<PcapFile>, std::string> open(const std::string& path,
                                                               std::uint64_t max_bytes,
                                                               std::string who);
  ~PcapFile();
  PcapFile(const PcapFile&) = delete;
  PcapFile& operator=(const PcapFile&) = delete;

  // Writes whole pcap records (as the usbmon.h functions append them); false once capturing has
  // stopped (the limit was reached, or the file cannot be written).
  bool write(wire::ByteView records);
  bool active() const;
  const std::string& path() const { return path_; }

  // The wall clock, as usbmon stamps its records.
  static Timestamp now();

 private:
  PcapFile(int fd, std::string path, std::uint64_t size, std::uint64_t max_bytes, std::string who);

  mutable std::mutex mutex_;
  int fd_;
  std::string path_;
  std::uint64_t size_;
  std::uint64_t max_bytes_;
  std::string who_;
  bool stopped_ = false;
};

}  // namespace usbnet::capture
