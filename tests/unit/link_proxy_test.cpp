// The tests' pausing/cutting TCP proxy, against a plain loopback server (no agent).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <string>

#include "support/link_proxy.h"

namespace {

using usbnet::test::LinkProxy;

struct Fd {
  int fd = -1;
  explicit Fd(int f) : fd(f) {}
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
};

std::uint16_t local_port(int fd) {
  sockaddr_in addr{};
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  return ntohs(addr.sin_port);
}

int listen_loopback() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  REQUIRE(::listen(fd, 8) == 0);
  return fd;
}

int connect_loopback(std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  return fd;
}

// What arrives on fd within `ms` (empty on timeout); "<eof>" when the peer closed.
std::string receive(int fd, int ms) {
  pollfd p{fd, POLLIN, 0};
  if (::poll(&p, 1, ms) <= 0) return {};
  char buffer[256];
  const ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
  if (n <= 0) return "<eof>";
  return std::string(buffer, static_cast<std::size_t>(n));
}

void send_text(int fd, const std::string& text) {
  REQUIRE(::send(fd, text.data(), text.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(text.size()));
}

struct Link {
  Fd server{listen_loopback()};
  LinkProxy proxy{local_port(server.fd)};
  Fd client{connect_loopback(proxy.port())};
  Fd agent{::accept(server.fd, nullptr, nullptr)};
};

}  // namespace

TEST_CASE("the proxy forwards both ways") {
  Link link;
  send_text(link.client.fd, "ping");
  CHECK(receive(link.agent.fd, 2000) == "ping");
  send_text(link.agent.fd, "pong");
  CHECK(receive(link.client.fd, 2000) == "pong");
  CHECK(link.proxy.accepted() == 1);
}

TEST_CASE("a paused proxy holds the bytes with the sockets open, and delivers them on resume") {
  Link link;
  link.proxy.pause();
  send_text(link.client.fd, "up");
  send_text(link.agent.fd, "down");
  CHECK(receive(link.agent.fd, 300).empty());
  CHECK(receive(link.client.fd, 300).empty());
  CHECK(link.proxy.open_connections() == 1);
  link.proxy.resume();
  CHECK(receive(link.agent.fd, 2000) == "up");
  CHECK(receive(link.client.fd, 2000) == "down");
}

TEST_CASE("a cut closes both sides, and a new connection is forwarded again") {
  Link link;
  link.proxy.cut();
  CHECK(receive(link.agent.fd, 2000) == "<eof>");
  CHECK(receive(link.client.fd, 2000) == "<eof>");
  CHECK(link.proxy.open_connections() == 0);

  Fd again{connect_loopback(link.proxy.port())};
  Fd accepted{::accept(link.server.fd, nullptr, nullptr)};
  send_text(again.fd, "after");
  CHECK(receive(accepted.fd, 2000) == "after");
}

TEST_CASE("a peer's close is passed on to the other side") {
  Link link;
  send_text(link.client.fd, "bye");
  ::shutdown(link.client.fd, SHUT_WR);
  CHECK(receive(link.agent.fd, 2000) == "bye");
  CHECK(receive(link.agent.fd, 2000) == "<eof>");
}
