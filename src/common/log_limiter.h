// At most one log line per interval for an event that may recur without bound (a refused URB,
// a flood of connections), counting the occurrences each line stands for.
#pragma once

#include <chrono>
#include <cstdint>

namespace usbnet::log {

class Limiter {
 public:
  using Clock = std::chrono::steady_clock;
  explicit Limiter(Clock::duration interval = std::chrono::seconds(10)) : interval_(interval) {}

  // Counts one occurrence. When a line is due, returns how many occurrences it stands for (this
  // one and those suppressed since the last line); otherwise 0.
  std::uint64_t due(Clock::time_point now = Clock::now()) {
    ++count_;
    if (logged_once_ && now - last_ < interval_) return 0;
    logged_once_ = true;
    last_ = now;
    const std::uint64_t n = count_;
    count_ = 0;
    return n;
  }

 private:
  Clock::duration interval_;
  Clock::time_point last_{};
  bool logged_once_ = false;
  std::uint64_t count_ = 0;
};

}  // namespace usbnet::log
