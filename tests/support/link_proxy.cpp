#include "link_proxy.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <list>
#include <stdexcept>
#include <vector>

namespace usbnet::test {

namespace {

constexpr std::size_t kBufferSize = 64 * 1024;

// Bytes read from one socket and not yet written to the other.
struct Direction {
  std::array<char, kBufferSize> buffer;
  std::size_t begin = 0;
  std::size_t end = 0;
  bool eof = false;   // the source sent FIN
  bool shut = false;  // FIN passed on to the destination
  std::size_t pending() const { return end - begin; }
};

struct Connection {
  int client = -1;
  int agent = -1;
  Direction up;    // client -> agent
  Direction down;  // agent -> client
  bool dead = false;

  Connection() = default;
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  ~Connection() {
    if (client >= 0) ::close(client);
    if (agent >= 0) ::close(agent);
  }
};

void set_nodelay(int fd) {
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

int connect_to(const std::string& host, std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  ::inet_pton(AF_INET, host.c_str(), &addr.sin_addr);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    ::close(fd);
    return -1;
  }
  set_nodelay(fd);
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  return fd;
}

// Moves what it can from `from` through `d` to `to`; false when the connection is broken.
bool pump(int from, Direction& d, int to, short from_events, short to_events) {
  if ((from_events & (POLLIN | POLLHUP | POLLERR)) && !d.eof && d.end < d.buffer.size()) {
    const ssize_t n = ::recv(from, d.buffer.data() + d.end, d.buffer.size() - d.end, 0);
    if (n > 0)
      d.end += static_cast<std::size_t>(n);
    else if (n == 0)
      d.eof = true;
    else if (errno != EAGAIN && errno != EINTR)
      return false;
  }
  if ((to_events & POLLOUT) && d.pending() > 0) {
    const ssize_t n = ::send(to, d.buffer.data() + d.begin, d.pending(), MSG_NOSIGNAL);
    if (n > 0)
      d.begin += static_cast<std::size_t>(n);
    else if (errno != EAGAIN && errno != EINTR)
      return false;
  }
  if (d.pending() == 0) d.begin = d.end = 0;
  if (d.eof && d.pending() == 0 && !d.shut) {
    ::shutdown(to, SHUT_WR);
    d.shut = true;
  }
  if (to_events & POLLERR) return false;
  return true;
}

short wanted(const Direction& d, bool source) {
  if (source) return (!d.eof && d.end < d.buffer.size()) ? POLLIN : 0;
  return d.pending() > 0 ? POLLOUT : 0;
}

}  // namespace

LinkProxy::LinkProxy(std::uint16_t target_port, std::string target_host)
    : target_port_(target_port), target_host_(std::move(target_host)) {
  const int listener = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = 0;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (::bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(listener, 64) != 0 ||
      ::getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len) != 0 ||
      ::pipe2(wake_, O_CLOEXEC | O_NONBLOCK) != 0) {
    ::close(listener);
    throw std::runtime_error("link proxy: cannot listen on a loopback port");
  }
  port_ = ntohs(addr.sin_port);
  thread_ = std::thread([this, listener] { run(listener); });
}

LinkProxy::~LinkProxy() {
  command(Command::kStop);
  thread_.join();
  ::close(wake_[0]);
  ::close(wake_[1]);
}

void LinkProxy::pause() { command(Command::kPause); }
void LinkProxy::resume() { command(Command::kResume); }
void LinkProxy::cut() { command(Command::kCut); }

int LinkProxy::accepted() {
  std::lock_guard lock(mutex_);
  return accepted_;
}

int LinkProxy::open_connections() {
  std::lock_guard lock(mutex_);
  return open_;
}

void LinkProxy::command(Command c) {
  std::unique_lock lock(mutex_);
  done_.wait(lock, [&] { return pending_ == Command::kNone; });
  pending_ = c;
  const std::uint64_t mine = ++requested_;
  const char byte = 1;
  [[maybe_unused]] const ssize_t n = ::write(wake_[1], &byte, 1);
  done_.wait(lock, [&] { return applied_ >= mine; });
}

void LinkProxy::run(int listener) {
  std::list<Connection> connections;
  bool paused = false;
  std::vector<pollfd> fds;
  for (;;) {
    fds.clear();
    fds.push_back({wake_[0], POLLIN, 0});
    fds.push_back({listener, POLLIN, 0});
    for (Connection& c : connections) {
      // A paused link polls nothing on its sockets (-1), so a hang-up cannot spin the loop.
      fds.push_back({paused ? -1 : c.client,
                     static_cast<short>(wanted(c.up, true) | wanted(c.down, false)), 0});
      fds.push_back({paused ? -1 : c.agent,
                     static_cast<short>(wanted(c.down, true) | wanted(c.up, false)), 0});
    }
    if (::poll(fds.data(), fds.size(), -1) < 0 && errno != EINTR) break;

    if (fds[0].revents & POLLIN) {
      char drain[64];
      while (::read(wake_[0], drain, sizeof drain) > 0) {
      }
      std::lock_guard lock(mutex_);
      const Command c = pending_;
      if (c == Command::kStop) {
        connections.clear();
        ::close(listener);
        open_ = 0;
        pending_ = Command::kNone;
        applied_ = requested_;
        done_.notify_all();
        return;
      }
      if (c == Command::kPause) paused = true;
      if (c == Command::kResume) paused = false;
      if (c == Command::kCut) connections.clear();
      open_ = static_cast<int>(connections.size());
      pending_ = Command::kNone;
      applied_ = requested_;
      done_.notify_all();
      continue;  // the poll set is stale after a command
    }

    std::size_t i = 2;
    for (Connection& c : connections) {
      const short client_events = fds[i++].revents;
      const short agent_events = fds[i++].revents;
      if (paused) continue;
      if (!pump(c.client, c.up, c.agent, client_events, agent_events) ||
          !pump(c.agent, c.down, c.client, agent_events, client_events) ||
          (c.up.shut && c.down.shut))
        c.dead = true;
      // A hang-up with everything from that side forwarded: nothing more can move.
      if (((client_events & POLLHUP) && c.up.eof && c.up.pending() == 0) ||
          ((agent_events & POLLHUP) && c.down.eof && c.down.pending() == 0))
        c.dead = true;
    }
    connections.remove_if([](const Connection& c) { return c.dead; });

    if (fds[1].revents & POLLIN) {
      const int accepted = ::accept4(listener, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
      if (accepted >= 0) {
        Connection& c = connections.emplace_back();
        c.client = accepted;
        set_nodelay(accepted);
        c.agent = connect_to(target_host_, target_port_);
        if (c.agent < 0) c.dead = true;  // the target is not there: close the client too
        std::lock_guard lock(mutex_);
        ++accepted_;
      }
      connections.remove_if([](const Connection& c) { return c.dead; });
    }
    std::lock_guard lock(mutex_);
    open_ = static_cast<int>(connections.size());
  }
  ::close(listener);
}

}  // namespace usbnet::test
