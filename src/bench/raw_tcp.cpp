#include "bench/raw_tcp.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <vector>

namespace usbnet::bench {

namespace {

using Clock = std::chrono::steady_clock;

void set_nodelay(int fd) {
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

bool read_all(int fd, void* data, std::size_t n) {
  auto* p = static_cast<char*>(data);
  while (n > 0) {
    const ssize_t r = ::read(fd, p, n);
    if (r <= 0) return false;
    p += r;
    n -= static_cast<std::size_t>(r);
  }
  return true;
}

bool write_all(int fd, const void* data, std::size_t n) {
  const auto* p = static_cast<const char*>(data);
  while (n > 0) {
    const ssize_t r = ::send(fd, p, n, MSG_NOSIGNAL);
    if (r <= 0) return false;
    p += r;
    n -= static_cast<std::size_t>(r);
  }
  return true;
}

// A command: mode (0 ping-pong, 1 stream to client, 2 stream from client), request and
// response sizes.
struct Command {
  std::uint32_t mode, request, response;
};

// The server: one connection at a time, one command per connection.
[[noreturn]] void serve(int listener) {
  std::vector<char> buffer(16 << 20);
  for (;;) {
    const int fd = ::accept(listener, nullptr, nullptr);
    if (fd < 0) continue;
    set_nodelay(fd);
    Command c{};
    if (read_all(fd, &c, sizeof c)) {
      if (c.mode == 0) {
        while (read_all(fd, buffer.data(), c.request) && write_all(fd, buffer.data(), c.response)) {
        }
      } else if (c.mode == 1) {
        while (write_all(fd, buffer.data(), c.response)) {
        }
      } else {
        while (::read(fd, buffer.data(), buffer.size()) > 0) {
        }
      }
    }
    ::close(fd);
  }
}

}  // namespace

RawTcpServer::RawTcpServer() {
  const int listener = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(listener, 4) != 0 ||
      ::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    throw std::runtime_error("cannot listen on loopback for the raw TCP baseline");
  }
  port_ = ntohs(addr.sin_port);
  pid_ = ::fork();
  if (pid_ == 0) serve(listener);
  ::close(listener);
}

RawTcpServer::~RawTcpServer() {
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, nullptr, 0);
}

int RawTcpServer::connect_client() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port_));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    throw std::runtime_error("cannot connect to the raw TCP baseline server");
  }
  set_nodelay(fd);
  return fd;
}

std::chrono::nanoseconds RawTcpServer::median_round_trip(std::size_t request, std::size_t response,
                                                         int iterations) {
  const int fd = connect_client();
  const Command c{0, static_cast<std::uint32_t>(request), static_cast<std::uint32_t>(response)};
  write_all(fd, &c, sizeof c);
  std::vector<char> out(request), in(response);
  std::vector<std::chrono::nanoseconds> times;
  for (int i = 0; i < iterations + 100; ++i) {
    const auto start = Clock::now();
    write_all(fd, out.data(), out.size());
    read_all(fd, in.data(), in.size());
    if (i >= 100) times.push_back(Clock::now() - start);  // the first ones warm up
  }
  ::close(fd);
  std::nth_element(times.begin(), times.begin() + times.size() / 2, times.end());
  return times[times.size() / 2];
}

double RawTcpServer::request_response_throughput(std::size_t request, std::size_t response,
                                                 std::chrono::milliseconds duration) {
  const int fd = connect_client();
  const Command c{0, static_cast<std::uint32_t>(request), static_cast<std::uint32_t>(response)};
  write_all(fd, &c, sizeof c);
  std::vector<char> out(request), in(response);
  std::size_t bytes = 0;
  const auto start = Clock::now();
  while (Clock::now() - start < duration) {
    write_all(fd, out.data(), out.size());
    read_all(fd, in.data(), in.size());
    bytes += response;
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  ::close(fd);
  return static_cast<double>(bytes) / seconds;
}

double RawTcpServer::stream_throughput(std::size_t chunk, std::chrono::milliseconds duration,
                                       bool to_server) {
  const int fd = connect_client();
  const Command c{to_server ? 2u : 1u, 0, static_cast<std::uint32_t>(chunk)};
  write_all(fd, &c, sizeof c);
  std::vector<char> buffer(chunk);
  std::size_t bytes = 0;
  const auto start = Clock::now();
  while (Clock::now() - start < duration) {
    if (to_server) {
      if (!write_all(fd, buffer.data(), chunk)) break;
    } else if (!read_all(fd, buffer.data(), chunk)) {
      break;
    }
    bytes += chunk;
  }
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  ::close(fd);
  return static_cast<double>(bytes) / seconds;
}

}  // namespace usbnet::bench
