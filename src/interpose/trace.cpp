#include "interpose/trace.h"

#include <fmt/format.h>

#include <chrono>
#include <cstdio>
#include <mutex>

#include "common/log.h"
#include "interpose/config.h"
#include "usbnet/protocol.h"

namespace usbnet::interpose {

namespace {

struct TraceFile {
  std::mutex mutex;
  std::FILE* file = nullptr;
};

TraceFile* trace_file() {
  static TraceFile* trace = []() -> TraceFile* {
    const std::string& path = config().trace_file;
    if (path.empty()) return nullptr;
    std::FILE* f = std::fopen(path.c_str(), "ae");
    if (!f) {
      log::error("USBNET_TRACE: cannot open '{}' for writing; not tracing", path);
      return nullptr;
    }
    static TraceFile t;
    t.file = f;
    return &t;
  }();
  return trace;
}

const char* type_name(std::uint8_t type) {
  switch (type) {
    case LIBUSB_TRANSFER_TYPE_CONTROL:
      return "CTRL";
    case LIBUSB_TRANSFER_TYPE_BULK:
      return "BULK";
    case LIBUSB_TRANSFER_TYPE_INTERRUPT:
      return "INT";
    case LIBUSB_TRANSFER_TYPE_ISOCHRONOUS:
      return "ISO";
  }
  return "?";
}

}  // namespace

std::uint64_t monotonic_ns() {
  return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                        std::chrono::steady_clock::now().time_since_epoch())
                                        .count());
}

bool tracing() { return trace_file() != nullptr; }

void trace_transfer(std::uint32_t trans_id, const libusb_transfer* t, std::uint8_t bus_number,
                    std::uint8_t device_address, std::uint64_t submitted_ns,
                    std::uint64_t completed_ns) {
  TraceFile* trace = trace_file();
  if (!trace) return;
  const std::string line = fmt::format(
      "t={:.6f} trans_id={} dev={:03d}:{:03d} type={} ep=0x{:02x} length={} status={} "
      "actual={} latency_us={}\n",
      static_cast<double>(completed_ns) / 1e9, trans_id, bus_number, device_address,
      type_name(t->type), t->endpoint, t->length,
      wire::urb_status_name(static_cast<wire::UrbStatus>(t->status)), t->actual_length,
      (completed_ns - submitted_ns) / 1000);
  std::lock_guard lock(trace->mutex);
  std::fputs(line.c_str(), trace->file);
  std::fflush(trace->file);
}

}  // namespace usbnet::interpose
