// The connection's clock for idle and liveness bookkeeping.
#pragma once

#include <chrono>
#include <cstdint>

namespace usbnet::transport {

inline std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace usbnet::transport
