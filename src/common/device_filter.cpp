#include "common/device_filter.h"

#include <charconv>

#include <fmt/format.h>

namespace usbnet {

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// "*" (any: `id` stays empty) or exactly four hex digits. False if neither.
bool parse_id(std::string_view text, std::optional<std::uint16_t>& id) {
  if (text == "*") {
    id.reset();
    return true;
  }
  if (text.size() != 4) return false;
  unsigned value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value, 16);
  if (ec != std::errc() || end != text.data() + text.size()) return false;
  id = static_cast<std::uint16_t>(value);
  return true;
}

}  // namespace

DeviceFilter DeviceFilter::all() {
  DeviceFilter f;
  f.rules_.push_back({});
  return f;
}

Expected<DeviceFilter, std::string> DeviceFilter::parse(std::string_view text) {
  DeviceFilter filter;
  std::string_view rest = text;
  while (!trim(rest).empty()) {
    const auto comma = rest.find(',');
    const std::string_view entry = trim(rest.substr(0, comma));
    rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
    if (entry.empty()) continue;
    if (entry == "*") {
      filter.rules_.push_back({});
      continue;
    }
    const auto colon = entry.find(':');
    Rule rule;
    if (colon == std::string_view::npos || !parse_id(entry.substr(0, colon), rule.vendor) ||
        !parse_id(entry.substr(colon + 1), rule.product)) {
      return Unexpected{
          fmt::format("'{}' is not a device: expected VID:PID in hex (4 digits each, '*' for any), "
                      "as in 1209:0001 or 1209:*",
                      entry)};
    }
    filter.rules_.push_back(rule);
  }
  return filter;
}

bool DeviceFilter::matches(std::uint16_t vendor, std::uint16_t product) const {
  for (const Rule& r : rules_) {
    if ((!r.vendor || *r.vendor == vendor) && (!r.product || *r.product == product)) return true;
  }
  return false;
}

std::string DeviceFilter::to_string() const {
  std::string out;
  for (const Rule& r : rules_) {
    if (!out.empty()) out += ',';
    out += r.vendor ? fmt::format("{:04x}", *r.vendor) : "*";
    out += ':';
    out += r.product ? fmt::format("{:04x}", *r.product) : "*";
  }
  return out;
}

}  // namespace usbnet
