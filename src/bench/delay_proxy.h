// A latency-bound link on loopback: a TCP proxy that holds every byte for half a round trip in
// each direction before passing it on, for the benchmark's delayed-link rows. usbnet and the raw
// TCP baseline go through the same proxy, so that its own cost (two more copies and a wake-up
// per segment) weighs on both sides alike and the ratio measures what each side does with the
// delay: how many round trips a transfer costs.
//
// The proxy is a child process (the benchmark pins itself, and so it, to one CPU); each
// connection it accepts gets a connection to the target and one thread per direction. A
// direction reads whatever arrives, stamps it with the time it may leave, and writes it when
// that time comes; it holds at most kMaxHeldBytes and reads no more until some has gone
// (the receiver's pace pushes back on the sender, as on a real link).
#pragma once

#include <chrono>

namespace usbnet::bench {

class DelayProxy {
 public:
  // Forks the proxy: it listens on 127.0.0.1 on a free port and forwards to 127.0.0.1:`target`.
  DelayProxy(int target_port, std::chrono::microseconds round_trip);
  ~DelayProxy();  // stops the proxy and every connection through it
  DelayProxy(const DelayProxy&) = delete;
  DelayProxy& operator=(const DelayProxy&) = delete;

  int port() const { return port_; }
  std::chrono::microseconds round_trip() const { return round_trip_; }

  static constexpr std::size_t kMaxHeldBytes = 32u << 20;

 private:
  int pid_ = -1;
  int port_ = 0;
  std::chrono::microseconds round_trip_;
};

}  // namespace usbnet::bench
