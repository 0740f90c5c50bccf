#include "interpose/urb_capture.h"

#include <pthread.h>

#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <map>
#include <memory>
#include <mutex>
#include <set>

#include "capture/pcap_file.h"
#include "common/log.h"
#include "interpose/agent_link.h"
#include "interpose/objects.h"
#include "interpose/remote_device.h"

namespace usbnet::interpose {

namespace {

constexpr std::uint64_t kDefaultMaxBytes = 1ull << 30;

struct Capture {
  // Held across fork() (see the atfork handlers) so that a child never inherits it locked.
  std::mutex mutex;
  std::unique_ptr<capture::PcapFile> file;
  std::map<const void*, capture::Urb> in_flight;
  std::set<std::pair<int, std::uint32_t>> enumerated;  // (agent index, device id)
  std::uint64_t next_enumeration_id = 1;
  wire::Bytes records;

  void write() {
    file->write(records);
    records.clear();
  }
};

std::uint64_t max_bytes() {
  const char* text = std::getenv("USBNET_PCAP_MAX_BYTES");
  if (!text || !*text) return kDefaultMaxBytes;
  const std::string_view s(text);
  std::uint64_t value = 0;
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (ec != std::errc() || end != s.data() + s.size() || value < 4096) {
    log::error("USBNET_PCAP_MAX_BYTES='{}' is not a number of bytes from 4096 on; using {}", s,
               kDefaultMaxBytes);
    return kDefaultMaxBytes;
  }
  return value;
}

Capture* the_capture() {
  static Capture* capture = []() -> Capture* {
    const char* path = std::getenv("USBNET_PCAP");
    if (!path || !*path) return nullptr;
    auto file = capture::PcapFile::open(path, max_bytes(), "USBNET_PCAP");
    if (!file) {
      log::error("{}; not capturing", file.error());
      return nullptr;
    }
    static Immortal<Capture> c;
    c.get().file = std::move(*file);
    pthread_atfork([] { c.get().mutex.lock(); }, [] { c.get().mutex.unlock(); },
                   [] { c.get().mutex.unlock(); });
    return &c.get();
  }();
  return capture;
}

int errno_of(int libusb_error) {
  switch (libusb_error) {
    case LIBUSB_ERROR_NO_DEVICE:
      return -ENODEV;
    case LIBUSB_ERROR_BUSY:
      return -EBUSY;
    case LIBUSB_ERROR_INVALID_PARAM:
      return -EINVAL;
    case LIBUSB_ERROR_NOT_SUPPORTED:
      return -ENOSYS;
    case LIBUSB_ERROR_NO_MEM:
      return -ENOMEM;
    default:
      return -EIO;
  }
}

}  // namespace

bool capturing() { return the_capture() != nullptr; }

void capture_submission(const void* key, const RemoteDevice& device, const wire::UrbSubmit& u) {
  Capture* c = the_capture();
  if (!c) return;
  capture::Urb urb;
  urb.id = reinterpret_cast<std::uintptr_t>(key);
  urb.bus = device.get_bus_number();
  urb.address = device.info().device_address;
  urb.type = u.type;
  urb.endpoint = u.endpoint;
  urb.flags = u.flags;
  urb.setup = u.setup;
  urb.length = u.data_len;
  urb.interval = capture::interval(device.info(), u.endpoint, u.type);
  urb.iso_lengths = u.iso_lengths;
  const capture::Timestamp now = capture::PcapFile::now();
  std::lock_guard lock(c->mutex);
  if (!c->file->active()) return;
  if (c->enumerated.emplace(device.link().index(), device.device_id()).second) {
    capture::append_enumeration(c->records, device.info(), urb.bus, c->next_enumeration_id, now);
    c->next_enumeration_id += device.info().configs.size() + 1;
  }
  capture::append_submission(c->records, urb, u.payload, now);
  c->in_flight[key] = std::move(urb);
  c->write();
}

namespace {

// The URB's last record: `append` writes it, then the URB is forgotten.
template <typename Append>
void finish(const void* key, Append append) {
  Capture* c = the_capture();
  if (!c) return;
  std::lock_guard lock(c->mutex);
  auto it = c->in_flight.find(key);
  if (it == c->in_flight.end()) return;
  if (c->file->active()) {
    append(c->records, it->second, capture::PcapFile::now());
    c->write();
  }
  c->in_flight.erase(it);
}

}  // namespace

void capture_submission_error(const void* key, int error) {
  finish(key, [&](wire::Bytes& out, const capture::Urb& urb, capture::Timestamp now) {
    capture::append_submission_error(out, urb, errno_of(error), now);
  });
}

void capture_completion(const void* key, wire::UrbStatus status, std::uint32_t actual_length,
                        std::span<const wire::IsoPacketResult> iso, wire::ByteView in_buffer) {
  finish(key, [&](wire::Bytes& out, const capture::Urb& urb, capture::Timestamp now) {
    capture::append_completion(out, urb, capture::Outcome{status, actual_length, iso}, in_buffer,
                               now);
  });
}

}  // namespace usbnet::interpose
