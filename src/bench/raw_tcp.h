// The raw loopback-TCP limit of this machine: what a simple program gets from TCP for the same
// work as usbnet (same sizes, same direction, same number of bytes), with a server in a child
// process and TCP_NODELAY on both sides. Every measurement gets a fresh connection whose
// handshake is done before the clock starts.
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

  int port() const { return port_; }
  // Where the client connects from now on: the server itself (0), or a proxy to it (a
  // DelayProxy's port).
  void connect_through(int proxy_port) { client_port_ = proxy_port != 0 ? proxy_port : port_; }

  // Median round trip: `request` bytes out, `response` bytes back, one at a time (after
  // warm_up_rounds(iterations) of them that do not count).
  std::chrono::nanoseconds median_round_trip(std::size_t request, std::size_t response,
                                             int iterations);
  // Bytes per second of `response`-byte answers to `request`-byte requests, one at a time,
  // until `total` bytes have been answered (a synchronous transfer's pattern).
  double request_response_throughput(std::size_t request, std::size_t response, std::size_t total);
  // Bytes per second moving `total` bytes in `chunk`-byte messages with `depth` of them in
  // flight: IN, the client keeps `depth` small requests outstanding and the server answers each
  // with a chunk; OUT, the client keeps `depth` chunks outstanding and the server answers each
  // with a small acknowledgement (an asynchronous transfer queue's pattern). The client's
  // messages come from, or land in, `buffers` buffers in turn (a queue of transfers has one
  // buffer per transfer in flight; one buffer, reused, is what a plain TCP program needs).
  double pipelined_throughput(std::size_t chunk, int depth, std::size_t total, bool in,
                              std::size_t buffers = 1);
  // Bytes per second streaming `total` bytes one way, written and read `chunk` bytes at a time
  // (for OUT, the clock stops when the server has read the last byte).
  double stream_throughput(std::size_t chunk, std::size_t total, bool in);

 private:
  int connect_client();

  int pid_ = -1;
  int port_ = 0;
  int client_port_ = 0;
};

}  // namespace usbnet::bench
