// The first message of every raw baseline connection (raw_tcp.h, raw_tls.h): what the server
// does on it.
#pragma once

#include <cstdint>

namespace usbnet::bench {

enum RawMode : std::uint32_t {
  kPingPong = 0,   // answer every `request`-byte message with `response` bytes
  kStreamOut = 1,  // send `total` bytes in `response`-byte writes
  kStreamIn = 2,   // read `total` bytes in `request`-byte reads, then send one byte
};

struct RawCommand {
  std::uint32_t mode, request, response;
  std::uint64_t total;
};

}  // namespace usbnet::bench
