#include "transport/endpoint.h"

#include <charconv>

#include <fmt/format.h>

namespace usbnet::transport {

std::string Endpoint::to_string() const {
  if (host.find(':') != std::string::npos) return fmt::format("[{}]:{}", host, port);
  return fmt::format("{}:{}", host, port);
}

Expected<Endpoint, std::string> parse_endpoint(std::string_view text, std::uint16_t default_port,
                                               PortZero port_zero) {
  auto fail = [&](std::string_view why) {
    return Unexpected{fmt::format("'{}' is not HOST:PORT: {}", text, why)};
  };
  if (text.empty()) return fail("it is empty");
  Endpoint endpoint;
  std::string_view port_text;
  if (text.front() == '[') {
    const auto close = text.find(']');
    if (close == std::string_view::npos) return fail("'[' without ']'");
    endpoint.host = std::string(text.substr(1, close - 1));
    const std::string_view rest = text.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') return fail("expected ':' after ']'");
      port_text = rest.substr(1);
      if (port_text.empty()) return fail("the port is missing after ':'");
    }
  } else {
    const auto colon = text.rfind(':');
    if (colon != std::string_view::npos && text.find(':') != colon) {
      return fail("an IPv6 address needs brackets, as in [::1]:3241");
    }
    endpoint.host = std::string(text.substr(0, colon));
    if (colon != std::string_view::npos) {
      port_text = text.substr(colon + 1);
      if (port_text.empty()) return fail("the port is missing after ':'");
    }
  }
  for (char c : endpoint.host) {
    if (c == ' ' || c == '/' || c == '@') return fail("the host contains a space, '/' or '@'");
  }
  endpoint.port = default_port;
  if (!port_text.empty()) {
    unsigned value = 0;
    const auto [end, ec] =
        std::from_chars(port_text.data(), port_text.data() + port_text.size(), value);
    const unsigned lowest = port_zero == PortZero::Allowed ? 0 : 1;
    if (ec != std::errc() || end != port_text.data() + port_text.size() || value < lowest ||
        value > 65535) {
      return fail(fmt::format("the port must be a number from {} to 65535", lowest));
    }
    endpoint.port = static_cast<std::uint16_t>(value);
  }
  return endpoint;
}

}  // namespace usbnet::transport
