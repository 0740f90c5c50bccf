#include "bench/delay_proxy.h"

#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <deque>
#include <thread>
#include <vector>

#include "bench/loopback_socket.h"

namespace usbnet::bench {

namespace {

using Clock = std::chrono::steady_clock;

// Bytes read from one side, and when they may be written to the other.
struct Held {
  Clock::time_point due;
  std::vector<char> bytes;
};

timespec timespec_of(Clock::duration d) {
  const auto ns =
      std::max<std::int64_t>(0, std::chrono::duration_cast<std::chrono::nanoseconds>(d).count());
  return {static_cast<time_t>(ns / 1'000'000'000), static_cast<long>(ns % 1'000'000'000)};
}

// One direction of a connection: from `from` to `to`, each byte `one_way` late. Ends when
// `from` ends (after writing what it holds, then shutting `to` for writing) or `to` fails.
void pump(int from, int to, Clock::duration one_way) {
  constexpr std::size_t kReadSize = 256 * 1024;
  std::deque<Held> held;
  std::size_t held_bytes = 0;
  bool ended = false;
  for (;;) {
    const auto now = Clock::now();
    while (!held.empty() && held.front().due <= now) {
      if (!write_all(to, held.front().bytes.data(), held.front().bytes.size())) return;
      held_bytes -= held.front().bytes.size();
      held.pop_front();
    }
    if (ended && held.empty()) {
      ::shutdown(to, SHUT_WR);
      return;
    }
    // Wait for input (while there is room for it) and for the next due time.
    pollfd p{from,
             static_cast<short>(!ended && held_bytes < DelayProxy::kMaxHeldBytes ? POLLIN : 0), 0};
    const timespec wait =
        timespec_of(held.empty() ? Clock::duration::zero() : held.front().due - Clock::now());
    const int r = ::ppoll(&p, 1, held.empty() ? nullptr : &wait, nullptr);
    if (r < 0 && errno != EINTR) return;
    if (r <= 0 || p.revents == 0) continue;
    std::vector<char> buffer(kReadSize);
    const ssize_t n = ::read(from, buffer.data(), buffer.size());
    if (n <= 0) {
      ended = true;
      continue;
    }
    buffer.resize(static_cast<std::size_t>(n));
    held_bytes += buffer.size();
    held.push_back({Clock::now() + one_way, std::move(buffer)});
  }
}

// One proxied connection: both directions, then both sockets closed.
void relay(int client, int target_port, Clock::duration one_way) {
  int server = -1;
  try {
    server = connect_to_loopback(target_port);
  } catch (const std::exception&) {
    ::close(client);
    return;
  }
  set_tcp_options(client);
  std::thread back([=] { pump(server, client, one_way); });
  pump(client, server, one_way);
  back.join();
  ::close(server);
  ::close(client);
}

[[noreturn]] void serve(int listener, int target_port, Clock::duration one_way) {
  for (;;) {
    const int fd = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    std::thread([=] { relay(fd, target_port, one_way); }).detach();
  }
}

}  // namespace

DelayProxy::DelayProxy(int target_port, std::chrono::microseconds round_trip)
    : round_trip_(round_trip) {
  const int listener = listen_on_loopback(port_);
  pid_ = ::fork();
  if (pid_ == 0) serve(listener, target_port, round_trip / 2);
  ::close(listener);
}

DelayProxy::~DelayProxy() {
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, nullptr, 0);
}

}  // namespace usbnet::bench
