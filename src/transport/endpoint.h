// HOST:PORT as users write it (agent --listen, USBNET_AGENT, usbnet list --agent).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "usbnet/expected.h"

namespace usbnet::transport {

struct Endpoint {
  std::string host;  // a name, an IPv4 address, or an IPv6 address without brackets
  std::uint16_t port = 0;

  std::string to_string() const;  // brackets around IPv6 addresses
  bool operator==(const Endpoint&) const = default;
};

// Accepts "host:port", "[v6addr]:port", "host" (default_port) and ":port" (host "").
// Port 0 (any free port) only for a listening address. The error is a sentence saying what is
// wrong with the text.
enum class PortZero { Refused, Allowed };
Expected<Endpoint, std::string> parse_endpoint(std::string_view text, std::uint16_t default_port,
                                               PortZero port_zero = PortZero::Refused);

}  // namespace usbnet::transport
