// The options every usbnet TCP connection sets on its socket.
#pragma once

#include <cstdint>

namespace usbnet::transport {

// TCP_NODELAY, a small unsent backlog (TCP_NOTSENT_LOWAT: two pieces), Reno on loopback,
// close-on-exec and non-blocking.
void configure_socket(int fd, std::uint32_t piece_size);

}  // namespace usbnet::transport
