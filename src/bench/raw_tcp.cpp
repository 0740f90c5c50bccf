#include "bench/raw_tcp.h"

#include "bench/loopback_socket.h"
#include "bench/raw_command.h"
#include "bench/warm_up.h"

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

using Command = RawCommand;

// The server: one connection at a time, one command per connection. It answers the command
// with one byte, so that the client starts its clock on a connection that is fully set up.
[[noreturn]] void serve(int listener) {
  std::vector<char> buffer(16 << 20);
  for (;;) {
    const int fd = ::accept(listener, nullptr, nullptr);
    if (fd < 0) continue;
    set_tcp_options(fd);
    Command c{};
    const char ready = 1;
    if (read_all(fd, &c, sizeof c) && c.request <= buffer.size() && c.response <= buffer.size() &&
        write_all(fd, &ready, 1)) {
      if (c.mode == kPingPong) {
        while (read_all(fd, buffer.data(), c.request) && write_all(fd, buffer.data(), c.response)) {
        }
      } else if (c.mode == kStreamOut) {
        for (std::uint64_t sent = 0; sent < c.total; sent += c.response) {
          if (!write_all(fd, buffer.data(), std::min<std::uint64_t>(c.response, c.total - sent))) {
            break;
          }
        }
      } else if (c.mode == kStreamIn) {
        std::uint64_t received = 0;
        while (received < c.total) {
          const ssize_t n = ::read(fd, buffer.data(), c.request);
          if (n <= 0) break;
          received += static_cast<std::uint64_t>(n);
        }
        write_all(fd, &ready, 1);
      }
    }
    // Wait for the client to close, so that the next connection never finds this one busy.
    while (::read(fd, buffer.data(), buffer.size()) > 0) {
    }
    ::close(fd);
  }
}

double rate(std::size_t bytes, Clock::time_point start) {
  return static_cast<double>(bytes) / std::chrono::duration<double>(Clock::now() - start).count();
}

}  // namespace

RawTcpServer::RawTcpServer() {
  const int listener = listen_on_loopback(port_);
  client_port_ = port_;
  pid_ = ::fork();
  if (pid_ == 0) serve(listener);
  ::close(listener);
}

RawTcpServer::~RawTcpServer() {
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, nullptr, 0);
}

int RawTcpServer::connect_client() { return connect_to_loopback(client_port_); }

namespace {

// A connection with the server's handshake done, closed at the end of the scope.
struct Session {
  Session(int fd, const Command& c) : fd(fd) {
    char ready = 0;
    if (!write_all(fd, &c, sizeof c) || !read_all(fd, &ready, 1)) {
      ::close(fd);
      throw std::runtime_error("the raw TCP baseline server did not answer");
    }
  }
  ~Session() { ::close(fd); }
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;
  int fd;
};

void require(bool ok) {
  if (!ok) throw std::runtime_error("the raw TCP baseline connection failed");
}

std::uint32_t u32(std::size_t n) { return static_cast<std::uint32_t>(n); }

}  // namespace

std::chrono::nanoseconds RawTcpServer::median_round_trip(std::size_t request, std::size_t response,
                                                         int iterations) {
  Session s(connect_client(), Command{kPingPong, u32(request), u32(response), 0});
  std::vector<char> out(request), in(response);
  std::vector<std::chrono::nanoseconds> times;
  const int warm_up = warm_up_rounds(iterations);
  for (int i = 0; i < iterations + warm_up; ++i) {
    const auto start = Clock::now();
    require(write_all(s.fd, out.data(), out.size()) && read_all(s.fd, in.data(), in.size()));
    if (i >= warm_up) times.push_back(Clock::now() - start);  // the first ones warm up
  }
  std::nth_element(times.begin(), times.begin() + times.size() / 2, times.end());
  return times[times.size() / 2];
}

double RawTcpServer::request_response_throughput(std::size_t request, std::size_t response,
                                                 std::size_t total) {
  Session s(connect_client(), Command{kPingPong, u32(request), u32(response), 0});
  std::vector<char> out(request), in(response);
  const auto start = Clock::now();
  for (std::size_t done = 0; done < total; done += response) {
    require(write_all(s.fd, out.data(), out.size()) && read_all(s.fd, in.data(), in.size()));
  }
  return rate(total, start);
}

double RawTcpServer::pipelined_throughput(std::size_t chunk, int depth, std::size_t total, bool in,
                                          std::size_t buffers) {
  constexpr std::size_t kSmall = 8;
  Session s(connect_client(), in ? Command{kPingPong, u32(kSmall), u32(chunk), 0}
                                 : Command{kPingPong, u32(chunk), u32(kSmall), 0});
  std::vector<char> space(chunk * std::max<std::size_t>(buffers, 1)), small(kSmall);
  std::size_t next = 0;  // which buffer the next message lands in
  const auto data = [&] {
    char* p = space.data() + (next % std::max<std::size_t>(buffers, 1)) * chunk;
    ++next;
    return p;
  };
  const std::size_t count = total / chunk;
  const auto send_one = [&] {
    require(in ? write_all(s.fd, small.data(), kSmall) : write_all(s.fd, data(), chunk));
  };
  const auto start = Clock::now();
  std::size_t sent = 0;
  for (; sent < count && sent < static_cast<std::size_t>(depth); ++sent) send_one();
  for (std::size_t done = 0; done < count; ++done) {
    require(in ? read_all(s.fd, data(), chunk) : read_all(s.fd, small.data(), kSmall));
    if (sent < count) {
      send_one();
      ++sent;
    }
  }
  return rate(count * chunk, start);
}

double RawTcpServer::stream_throughput(std::size_t chunk, std::size_t total, bool in) {
  Session s(connect_client(), Command{in ? kStreamOut : kStreamIn, u32(chunk), u32(chunk), total});
  std::vector<char> buffer(chunk);
  const auto start = Clock::now();
  for (std::size_t done = 0; done < total; done += chunk) {
    const std::size_t n = std::min(chunk, total - done);
    require(in ? read_all(s.fd, buffer.data(), n) : write_all(s.fd, buffer.data(), n));
  }
  if (!in) require(read_all(s.fd, buffer.data(), 1));  // the server has read everything
  return rate(total, start);
}

}  // namespace usbnet::bench
