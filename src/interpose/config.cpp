#include "interpose/config.h"

#include <charconv>
#include <cstdlib>

#include "client/client_security.h"
#include "common/log.h"
#include "interpose/objects.h"
#include "usbnet/protocol.h"

namespace usbnet::interpose {

namespace {

template <typename Number>
void parse_number(const char* text, const char* name, Number min, Number max, Number& out,
                  std::vector<std::string>& errors) {
  if (!text) return;
  const std::string_view s(text);
  Number value{};
  const auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), value);
  if (ec != std::errc() || end != s.data() + s.size() || value < min || value > max) {
    errors.push_back(
        fmt::format("{}='{}' is not a number from {} to {}; using {}", name, s, min, max, out));
    return;
  }
  out = value;
}

void parse_duration(const char* text, const char* name, long min, long max,
                    std::chrono::milliseconds& out, std::vector<std::string>& errors) {
  long ms = out.count();
  parse_number<long>(text, name, min, max, ms, errors);
  out = std::chrono::milliseconds(ms);
}

}  // namespace

std::optional<bool> parse_switch(const char* text) {
  if (!text) return false;
  const std::string_view s(text);
  if (s.empty() || s == "0" || s == "no" || s == "false" || s == "off") return false;
  if (s == "1" || s == "yes" || s == "true" || s == "on") return true;
  return std::nullopt;
}

Config parse_config(const char* agent, const char* devices, const char* log_level,
                    const char* trace, const char* connect_timeout, const char* heartbeat,
                    const char* grace, const char* piece_size, std::vector<std::string>& errors) {
  Config c;
  if (log_level && *log_level) {
    if (auto level = log::parse_level(log_level)) {
      log::set_level(*level);
    } else {
      errors.push_back(fmt::format(
          "USBNET_LOG='{}' is not one of error, warn, info, debug, trace, off; using warn",
          log_level));
    }
  }
  if (agent) {
    std::string_view rest(agent);
    while (!rest.empty()) {
      const auto comma = rest.find_first_of(", ");
      const std::string_view entry = rest.substr(0, comma);
      rest = comma == std::string_view::npos ? std::string_view{} : rest.substr(comma + 1);
      if (entry.empty()) continue;
      auto endpoint = transport::parse_endpoint(entry, wire::kDefaultPort);
      if (!endpoint) {
        errors.push_back("USBNET_AGENT: " + endpoint.error() + "; ignoring it");
      } else if (endpoint->host.empty()) {
        errors.push_back(fmt::format("USBNET_AGENT: '{}' names no host; ignoring it", entry));
      } else {
        c.agents.push_back(*endpoint);
      }
    }
  }
  if (!devices) {
    c.devices = DeviceFilter::all();
  } else if (auto filter = DeviceFilter::parse(devices)) {
    c.devices = *filter;
  } else {
    errors.push_back("USBNET_DEVICES: " + filter.error() + "; using no remote device");
  }
  if (trace) c.trace_file = trace;
  parse_duration(connect_timeout, "USBNET_CONNECT_TIMEOUT_MS", 10, 600000, c.connect_timeout,
                 errors);
  parse_duration(heartbeat, "USBNET_HEARTBEAT_MS", 100, 600000, c.heartbeat, errors);
  parse_duration(grace, "USBNET_TIMEOUT_GRACE_MS", 0, 600000, c.timeout_grace, errors);
  std::uint32_t piece = wire::kDefaultPieceSize;
  parse_number<std::uint32_t>(piece_size, "USBNET_PIECE_SIZE", wire::kMinPieceSize,
                              wire::kMaxPieceSize, piece, errors);
  c.piece_size = piece;
  return c;
}

const Config& config() {
  // Immortal: the agent threads may still read it while a program that never called
  // libusb_exit runs its static destructors.
  static Immortal<Config> c([] {
    log::set_prefix("libusbnet");
    std::vector<std::string> errors;
    Config parsed = parse_config(
        std::getenv("USBNET_AGENT"), std::getenv("USBNET_DEVICES"), std::getenv("USBNET_LOG"),
        std::getenv("USBNET_TRACE"), std::getenv("USBNET_CONNECT_TIMEOUT_MS"),
        std::getenv("USBNET_HEARTBEAT_MS"), std::getenv("USBNET_TIMEOUT_GRACE_MS"),
        std::getenv("USBNET_PIECE_SIZE"), errors);
    const char* insecure = std::getenv("USBNET_INSECURE");
    if (auto on = parse_switch(insecure)) {
      parsed.insecure = *on;
    } else {
      errors.push_back(
          fmt::format("USBNET_INSECURE='{}' is neither 1 nor 0; keeping TLS", insecure));
    }
    parsed.config_dir = client::client_dir_from_environment();
    for (const std::string& e : errors) log::error("{}", e);
    return parsed;
  }());
  return c.get();
}

}  // namespace usbnet::interpose
