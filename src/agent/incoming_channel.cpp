#include "agent/incoming_channel.h"

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "transport/tcp_channel.h"
#include "transport/tls_channel.h"
#include "usbnet/wire.h"

namespace usbnet::agent {

using transport::IoResult;

namespace {

constexpr std::size_t kDecidingBytes = 3;

enum class Kind { Undecided, Plain, Tls };

Kind kind_of(const std::vector<std::uint8_t>& first) {
  if (first.empty()) return Kind::Undecided;
  if (first[0] != 0x16) return Kind::Plain;
  if (first.size() < 2) return Kind::Undecided;
  if (first[1] != 0x03) return Kind::Plain;
  if (first.size() < 3) return Kind::Undecided;
  return first[2] == 0 ? Kind::Plain : Kind::Tls;
}

}  // namespace

IncomingChannel::IncomingChannel(int accepted_socket, std::uint32_t piece_size,
                                 std::shared_ptr<const AgentSecurity> security,
                                 bool plaintext_allowed, std::shared_ptr<ClientIdentity> identity)
    : fd_(accepted_socket),
      piece_size_(piece_size),
      security_(std::move(security)),
      plaintext_allowed_(plaintext_allowed),
      identity_(std::move(identity)) {}

IncomingChannel::~IncomingChannel() {
  if (!inner_) ::close(fd_);
}

IoResult IncomingChannel::sniff() {
  while (kind_of(first_) == Kind::Undecided) {
    std::uint8_t byte[kDecidingBytes];
    const ssize_t n = ::recv(fd_, byte, kDecidingBytes - first_.size(), MSG_DONTWAIT);
    if (n > 0) {
      first_.insert(first_.end(), byte, byte + n);
      continue;
    }
    if (n == 0) return IoResult::closed();
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return IoResult::would_block(transport::kReadable);
    return IoResult::failed(std::strerror(errno));
  }
  if (kind_of(first_) == Kind::Tls) {
    auto tls = std::make_unique<transport::TlsChannel>(fd_, piece_size_, security_->new_session(),
                                                       std::move(first_));
    first_.clear();
    tls_ = tls.get();
    inner_ = std::move(tls);
    return IoResult::done(0);
  }
  if (!plaintext_allowed_) return refuse_plaintext();
  inner_ = std::make_unique<transport::TcpChannel>(fd_, piece_size_);
  identity_->tls = false;
  return IoResult::done(0);
}

IoResult IncomingChannel::refuse_plaintext() {
  const wire::Bytes frame = wire::encode(wire::Error{
      0, wire::error_code::kAccess,
      "this agent accepts only TLS clients with an authorized key: run `usbnet key` on the "
      "client machine and add the line it prints to the agent's authorized_clients file "
      "(README, \"Keys and TLS\")"});
  // (What the client sent is read at shutdown().)
  [[maybe_unused]] const ssize_t n =
      ::send(fd_, frame.data(), frame.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
  return IoResult::failed(
      "a plaintext client, refused: this agent requires TLS off loopback (--insecure allows "
      "plaintext)");
}

IoResult IncomingChannel::handshake() {
  if (!inner_) {
    IoResult chosen = sniff();
    if (chosen.status != IoResult::Status::Done) return chosen;
  }
  IoResult step = inner_->handshake();
  if (step.status == IoResult::Status::Done) handshake_done_ = true;
  if (step.status == IoResult::Status::Done && tls_) {
    identity_->tls = true;
    if (const auto& peer = tls_->session().peer()) {
      identity_->fingerprint = peer->fingerprint;
      identity_->name = peer->name;
      identity_->key = peer->key;
      identity_->pairing_only = peer->trust == security::PeerIdentity::Trust::PairingOnly;
      identity_->ca_issued = peer->ca_issued;
    }
  }
  return step;
}

IoResult IncomingChannel::read(std::span<std::uint8_t> into) {
  if (!inner_) return IoResult::failed("read before the handshake");
  if (first_offset_ < first_.size()) {
    // Plain usbnet: the bytes read to decide come first.
    const std::size_t n = std::min(into.size(), first_.size() - first_offset_);
    std::memcpy(into.data(), first_.data() + first_offset_, n);
    first_offset_ += n;
    return IoResult::done(n);
  }
  return inner_->read(into);
}

IoResult IncomingChannel::write(std::span<const iovec> from) {
  if (!inner_) return IoResult::failed("write before the handshake");
  return inner_->write(from);
}

bool IncomingChannel::has_buffered_input() const {
  if (!inner_) return false;
  return first_offset_ < first_.size() || inner_->has_buffered_input();
}

void IncomingChannel::shutdown() {
  if (!handshake_done_) {
    // A refused client (its key, its plaintext): what it sent meanwhile is read first, as
    // closing a socket with unread input resets the connection, and the client could lose the
    // refusal (a TLS alert, an ERROR frame) before reading it.
    std::uint8_t sink[8192];
    for (int i = 0; i < 8 && ::recv(fd_, sink, sizeof sink, MSG_DONTWAIT) > 0; ++i) {
    }
  }
  if (inner_) {
    inner_->shutdown();
  } else {
    ::shutdown(fd_, SHUT_RDWR);
  }
}

}  // namespace usbnet::agent
