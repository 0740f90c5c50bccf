#include "log.h"

#include <unistd.h>

#include <atomic>
#include <mutex>
#include <new>
#include <string>

namespace usbnet::log {

namespace {

// Never destroyed: threads may still log while the program runs its static destructors.
struct Sink {
  std::mutex mutex;
  std::string prefix = "usbnet";
  std::function<void(Level, std::string_view)> custom;
};
Sink& sink() {
  alignas(Sink) static unsigned char storage[sizeof(Sink)];
  static Sink* s = new (storage) Sink;
  return *s;
}

std::atomic<Level> current_level{Level::Warn};

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
  std::lock_guard lock(sink().mutex);
  sink().prefix = prefix;
}

void set_sink(std::function<void(Level, std::string_view)> custom) {
  std::lock_guard lock(sink().mutex);
  sink().custom = std::move(custom);
}

void lock_for_fork() { sink().mutex.lock(); }
void unlock_after_fork() { sink().mutex.unlock(); }

void write(Level l, std::string_view message) {
  Sink& s = sink();
  std::lock_guard lock(s.mutex);
  if (s.custom) {
    s.custom(l, message);
    return;
  }
  // One write() per line, so lines from several threads or processes never interleave.
  const std::string line = fmt::format("{}: {}: {}\n", s.prefix, level_name(l), message);
  for (std::size_t at = 0; at < line.size();) {
    const ssize_t n = ::write(STDERR_FILENO, line.data() + at, line.size() - at);
    if (n <= 0) break;
    at += static_cast<std::size_t>(n);
  }
}

}  // namespace usbnet::log
