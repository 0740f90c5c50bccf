// Sends MIB MiB of zeros to the first client that connects to PORT, in 1 MiB writes, then
// exits: the lab benchmark's raw TCP figure, measured on the path the agent's data takes (from
// inside the guest, through QEMU's user-mode network, to the host).
//
//   tcp_source PORT MIB
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <string>
#include <vector>

namespace {

// Closes a file descriptor when it goes out of scope.
struct Fd {
  int fd;
  explicit Fd(int f) : fd(f) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

int fail(const char* what) {
  std::perror(what);
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::fprintf(stderr, "usage: tcp_source PORT MIB\n");
    return 2;
  }
  const auto port = static_cast<std::uint16_t>(std::stoi(argv[1]));
  const std::size_t total = std::stoull(argv[2]) << 20;

  Fd listener(::socket(AF_INET, SOCK_STREAM, 0));
  if (listener.fd < 0) return fail("socket");
  const int on = 1;
  ::setsockopt(listener.fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_ANY);
  if (::bind(listener.fd, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
    return fail("bind");
  }
  if (::listen(listener.fd, 1) != 0) return fail("listen");
  Fd client(::accept(listener.fd, nullptr, nullptr));
  if (client.fd < 0) return fail("accept");

  const std::vector<char> zeros(1 << 20);
  for (std::size_t sent = 0; sent < total;) {
    const ssize_t n = ::write(client.fd, zeros.data(), std::min(zeros.size(), total - sent));
    if (n <= 0) return fail("write");
    sent += static_cast<std::size_t>(n);
  }
  return 0;
}
