#include "transport/tcp_channel.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "usbnet/pieces.h"

#if defined(__SANITIZE_THREAD__)
// ThreadSanitizer's dynamic annotations (libtsan exports them; GCC 12 ships no header for them).
extern "C" void AnnotateIgnoreReadsBegin(const char* file, int line);
extern "C" void AnnotateIgnoreReadsEnd(const char* file, int line);
#endif

namespace usbnet::transport {

namespace {

bool peer_is_loopback(int fd) {
  sockaddr_storage peer{};
  socklen_t length = sizeof peer;
  if (::getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &length) != 0) return false;
  if (peer.ss_family == AF_INET) {
    const auto& a = reinterpret_cast<const sockaddr_in&>(peer);
    return (ntohl(a.sin_addr.s_addr) >> 24) == 127;
  }
  if (peer.ss_family == AF_INET6) {
    const auto& a = reinterpret_cast<const sockaddr_in6&>(peer);
    if (IN6_IS_ADDR_LOOPBACK(&a.sin6_addr)) return true;
    return IN6_IS_ADDR_V4MAPPED(&a.sin6_addr) && a.sin6_addr.s6_addr[12] == 127;
  }
  return false;
}

void configure_socket(int fd, std::uint32_t piece_size) {
  const int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  // Keep at most about one piece unsent in the kernel, so that a small frame queued behind a
  // large payload waits for one piece rather than for a whole socket buffer.
  const int lowat = static_cast<int>(2 * wire::clamp_piece_size(piece_size));
  ::setsockopt(fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &lowat, sizeof lowat);
  if (peer_is_loopback(fd)) {
    // No congestion to control on loopback, and a model-based controller (BBR, a common
    // default) paces a long-lived, application-limited connection at whatever rate it last
    // estimated, with a timer per segment: measured here, async bulk IN fell from 7.7 to
    // 2.6-3.6 GB/s on one connection after a phase of 1 MiB transfers. Reno, which every
    // kernel offers to unprivileged programs, neither models nor paces.
    static constexpr char kReno[] = "reno";
    ::setsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, kReno, sizeof kReno - 1);
  }
  ::fcntl(fd, F_SETFD, FD_CLOEXEC);
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
}

bool would_block(int error) { return error == EAGAIN || error == EWOULDBLOCK; }

// sendmsg(), non-blocking. Under ThreadSanitizer its reads of the frames are not recorded: TSan
// marks the bytes read when the call returns, not when the kernel copied them, and by then the
// peer may have received them and answered, and the program may be refilling the buffer for its
// next transfer. TSan cannot see that order, which goes through the other process.
ssize_t send_buffers(int fd, const msghdr& msg) {
#if defined(__SANITIZE_THREAD__)
  AnnotateIgnoreReadsBegin(__FILE__, __LINE__);
  const ssize_t n = ::sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
  const int error = errno;
  AnnotateIgnoreReadsEnd(__FILE__, __LINE__);
  errno = error;
  return n;
#else
  return ::sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
#endif
}

}  // namespace

TcpChannel::TcpChannel(int connected_socket, std::uint32_t piece_size) : fd_(connected_socket) {
  configure_socket(fd_, piece_size);
}

TcpChannel::~TcpChannel() { ::close(fd_); }

IoResult TcpChannel::read(std::span<std::uint8_t> into) {
  for (;;) {
    const ssize_t n = ::recv(fd_, into.data(), into.size(), MSG_DONTWAIT);
    if (n > 0) return IoResult::done(static_cast<std::size_t>(n));
    if (n == 0) return IoResult::closed();
    if (errno == EINTR) continue;
    if (would_block(errno)) return IoResult::would_block(kReadable);
    return IoResult::failed(std::strerror(errno));
  }
}

IoResult TcpChannel::read_into(std::span<std::uint8_t> first, std::span<std::uint8_t> then) {
  iovec parts[2] = {{first.data(), first.size()}, {then.data(), then.size()}};
  msghdr msg{};
  msg.msg_iov = parts;
  msg.msg_iovlen = 2;
  for (;;) {
    const ssize_t n = ::recvmsg(fd_, &msg, MSG_DONTWAIT);
    if (n > 0) return IoResult::done(static_cast<std::size_t>(n));
    if (n == 0) return IoResult::closed();
    if (errno == EINTR) continue;
    if (would_block(errno)) return IoResult::would_block(kReadable);
    return IoResult::failed(std::strerror(errno));
  }
}

IoResult TcpChannel::write(std::span<const iovec> from) {
  msghdr msg{};
  msg.msg_iov = const_cast<iovec*>(from.data());
  msg.msg_iovlen = from.size();
  for (;;) {
    const ssize_t n = send_buffers(fd_, msg);
    if (n >= 0) return IoResult::done(static_cast<std::size_t>(n));
    if (errno == EINTR) continue;
    if (would_block(errno)) return IoResult::would_block(kWritable);
    return IoResult::failed(std::string("send failed: ") + std::strerror(errno));
  }
}

void TcpChannel::shutdown() { ::shutdown(fd_, SHUT_RDWR); }

}  // namespace usbnet::transport
