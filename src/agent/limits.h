// The bounds on what clients can make the agent hold. Each has a flag (limit_flags.cpp) and a
// default that real workloads stay far below (the loopback benchmark at depth 32 with 1 MiB
// transfers holds 32 URBs and 32 MiB); README "Reliability" lists them.
#pragma once

#include <chrono>
#include <cstddef>

namespace usbnet::agent {

// Per client connection.
struct ClientLimits {
  // URBs submitted and not yet answered; past it a URB completes at once with ERROR.
  std::size_t max_urbs = 4096;
  // Bytes of their transfer buffers, counted from the submission until the completion has been
  // written to the client; past it a URB completes at once with ERROR.
  std::size_t max_urb_memory = 256u << 20;
  // Bytes of answers waiting to be written to the client: past it the agent stops reading the
  // client's requests until the client has read some (backpressure), and answers a
  // LIST_DEVICES that arrives meanwhile with BUSY.
  std::size_t max_send_queue = 64u << 20;
};

// For the listening socket.
struct ConnectionLimits {
  std::size_t max_connections = 512;  // open client connections, all addresses together
  std::size_t max_per_address = 64;   // from one IP address
  // A connection that has not completed its HELLO by then is closed.
  std::chrono::milliseconds hello_timeout{10000};
};

}  // namespace usbnet::agent
