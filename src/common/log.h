// One-line logging to stderr (or a sink the program sets), with levels. Messages below the level
// cost a comparison and nothing else.
#pragma once

#include <fmt/format.h>

#include <functional>
#include <optional>
#include <string_view>

namespace usbnet::log {

enum class Level { Off = 0, Error, Warn, Info, Debug, Trace };

void set_level(Level level);
Level level();
inline bool enabled(Level l) { return l <= level(); }
std::optional<Level> parse_level(std::string_view text);  // "error", "warn", ..., "off"
std::string_view level_name(Level level);

// Every line starts with this prefix ("usbnet-agent", "libusbnet").
void set_prefix(std::string_view prefix);
// Replaces the default sink (stderr); nullptr restores it.
void set_sink(std::function<void(Level, std::string_view)> sink);

void write(Level level, std::string_view message);

// For fork handlers: the sink's lock, held across fork() so that a child never inherits it
// locked by another thread.
void lock_for_fork();
void unlock_after_fork();

template <typename... Args>
void at(Level l, fmt::format_string<Args...> format, Args&&... args) {
  if (enabled(l)) write(l, fmt::format(format, std::forward<Args>(args)...));
}
template <typename... Args>
void error(fmt::format_string<Args...> f, Args&&... a) {
  at(Level::Error, f, std::forward<Args>(a)...);
}
template <typename... Args>
void warn(fmt::format_string<Args...> f, Args&&... a) {
  at(Level::Warn, f, std::forward<Args>(a)...);
}
template <typename... Args>
void info(fmt::format_string<Args...> f, Args&&... a) {
  at(Level::Info, f, std::forward<Args>(a)...);
}
template <typename... Args>
void debug(fmt::format_string<Args...> f, Args&&... a) {
  at(Level::Debug, f, std::forward<Args>(a)...);
}
template <typename... Args>
void trace(fmt::format_string<Args...> f, Args&&... a) {
  at(Level::Trace, f, std::forward<Args>(a)...);
}

}  // namespace usbnet::log
