#include "log.h"

#include <unistd.h>

#include <atomic>
#include <mutex>
#include <string>

namespace usbnet::log {

namespace {
std::atomic<Level> current_level{Level::Warn};
std::mutex sink_mutex;
std::string line_prefix = "usbnet";
std::function<void(Level, std::string_view)> custom_sink;
}  // namespace

void set_level(Level l) { current_level = l; }
Level level() { return current_level.load(std::memory_order_relaxed); }

std::string_view level_name(Level l) {
  switch (l) {
    case Level::Off:
      return "off";
    case Level::Error:
      return "error";
    case Level::Warn:
      return "warn";
    case Level::Info:
      return "info";
    case Level::Debug:
      return "debug";
    case Level::Trace:
      return "trace";
  }
  return "?";
}

std::optional<Level> parse_level(std::string_view text) {
  for (Level l : {Level::Off, Level::Error, Level::Warn, Level::Info, Level::Debug, Level::Trace}) {
    if (text == level_name(l)) return l;
  }
  if (text == "warning") return Level::Warn;
  return std::nullopt;
}

void set_prefix(std::string_view prefix) {
  std::lock_guard lock(sink_mutex);
  line_prefix = prefix;
}

void set_sink(std::function<void(Level, std::string_view)> sink) {
  std::lock_guard lock(sink_mutex);
  custom_sink = std::move(sink);
}

void lock_for_fork() { sink_mutex.lock(); }
void unlock_after_fork() { sink_mutex.unlock(); }

void write(Level l, std::string_view message) {
  std::lock_guard lock(sink_mutex);
  if (custom_sink) {
    custom_sink(l, message);
    return;
  }
  // One write() per line, so lines from several threads or processes never interleave.
  const std::string line = fmt::format("{}: {}: {}\n", line_prefix, level_name(l), message);
  for (std::size_t at = 0; at < line.size();) {
    const ssize_t n = ::write(STDERR_FILENO, line.data() + at, line.size() - at);
    if (n <= 0) break;
    at += static_cast<std::size_t>(n);
  }
}

}  // namespace usbnet::log
