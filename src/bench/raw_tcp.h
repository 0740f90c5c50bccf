// The raw loopback-TCP limit of this machine, measured the way usbnet uses TCP: a server in a
// child process, TCP_NODELAY, request/response round trips and one-way streaming.
#pragma once

#include <chrono>
#include <cstddef>

namespace usbnet::bench {

class RawTcpServer {
 public:
  RawTcpServer();  // forks the server; it listens on 127.0.0.1 on a free port
  ~RawTcpServer();
  RawTcpServer(const RawTcpServer&) = delete;
  RawTcpServer& operator=(const RawTcpServer&) = delete;

  // Median round trip: `request` bytes out, `response` bytes back, one at a time.
  std::chrono::nanoseconds median_round_trip(std::size_t request, std::size_t response,
                                             int iterations);
  // Bytes per second of `response`-byte answers to `request`-byte requests, one at a time.
  double request_response_throughput(std::size_t request, std::size_t response,
                                     std::chrono::milliseconds duration);
  // Bytes per second the server can stream one way (reads of `chunk` bytes).
  double stream_throughput(std::size_t chunk, std::chrono::milliseconds duration, bool to_server);

 private:
  int connect_client();

  int pid_ = -1;
  int port_ = 0;
};

}  // namespace usbnet::bench
