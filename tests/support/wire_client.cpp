#include "wire_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <stdexcept>
#include <string_view>

#include "security/ed25519_key.h"
#include "security/tls_context.h"
#include "transport/tls_channel.h"

namespace usbnet::test {

namespace {

struct Collector : wire::MessageSink {
  std::deque<Received>& inbox;
  int& heartbeats;
  Collector(std::deque<Received>& i, int& h) : inbox(i), heartbeats(h) {}
  void on_heartbeat() override { ++heartbeats; }
  void on_message(wire::Message&& m) override {
    // Own the bytes: re-encode, and decode from the owned copy.
    Received r;
    r.frame = wire::encode(m);
    r.message = *wire::decode(wire::ByteView(r.frame).subspan(wire::kFrameLengthSize));
    inbox.push_back(std::move(r));
  }
};

int wait_for(int fd, short events, std::chrono::steady_clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - std::chrono::steady_clock::now());
  if (left.count() <= 0) return 0;
  pollfd p{fd, events, 0};
  return ::poll(&p, 1, static_cast<int>(left.count()));
}

short poll_events(transport::Readiness readiness) {
  short events = 0;
  if (readiness & transport::kReadable) events |= POLLIN;
  if (readiness & transport::kWritable) events |= POLLOUT;
  return events ? events : POLLIN;
}

}  // namespace

WireClient::WireClient(std::uint16_t port, Tls tls) : WireClient(port) {
  auto context = security::TlsContext::create(security::TlsRole::Client, tls.key);
  if (!context) throw std::runtime_error("TLS context: " + context.error());
  auto session = std::make_unique<security::TlsSession>(
      std::move(*context), [](const security::PeerCertificate& agent) {
        return security::Verdict::accept(security::PeerIdentity{
            security::PeerIdentity::Trust::NewAgent, agent.key, agent.fingerprint, agent.subject});
      });
  tls_ = std::make_unique<transport::TlsChannel>(fd_, 65536, std::move(session));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  for (;;) {
    const transport::IoResult step = tls_->handshake();
    if (step.status == transport::IoResult::Status::Done) break;
    if (step.status != transport::IoResult::Status::WouldBlock ||
        wait_for(fd_, poll_events(step.wait_for), deadline) <= 0) {
      throw std::runtime_error("TLS handshake with the agent failed: " +
                               (step.error.empty() ? std::string("timed out") : step.error));
    }
  }
}

WireClient::WireClient(std::uint16_t port, const char* host) {
  const bool v6 = std::string_view(host).find(':') != std::string_view::npos;
  sockaddr_storage storage{};
  socklen_t length = 0;
  if (v6) {
    auto& addr = reinterpret_cast<sockaddr_in6&>(storage);
    addr.sin6_family = AF_INET6;
    addr.sin6_port = htons(port);
    ::inet_pton(AF_INET6, host, &addr.sin6_addr);
    length = sizeof addr;
  } else {
    auto& addr = reinterpret_cast<sockaddr_in&>(storage);
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    ::inet_pton(AF_INET, host, &addr.sin_addr);
    length = sizeof addr;
  }
  fd_ = ::socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (::connect(fd_, reinterpret_cast<sockaddr*>(&storage), length) != 0) {
    ::close(fd_);
    throw std::runtime_error("cannot connect to the agent on port " + std::to_string(port));
  }
  const int one = 1;
  ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

WireClient::WireClient(Adopt connected) : fd_(connected.fd) {
  const int one = 1;
  ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

WireClient::~WireClient() { close(); }

void WireClient::close() {
  if (tls_) {
    tls_.reset();  // closes the socket
  } else if (fd_ >= 0) {
    ::close(fd_);
  }
  fd_ = -1;
}

bool WireClient::write_tls(wire::ByteView bytes, std::chrono::steady_clock::time_point deadline,
                           std::size_t& sent) {
  while (sent < bytes.size() || tls_->has_pending_output()) {
    const iovec iov{const_cast<std::uint8_t*>(bytes.data()) + sent, bytes.size() - sent};
    const transport::IoResult r = tls_->write(std::span(&iov, sent < bytes.size() ? 1 : 0));
    if (r.status == transport::IoResult::Status::Done && r.bytes > 0) {
      sent += r.bytes;
      continue;
    }
    if (r.status == transport::IoResult::Status::Failed) return false;
    if (r.status == transport::IoResult::Status::Done && !tls_->has_pending_output()) continue;
    // Blocked, or the tail of a record still to hand to the socket.
    const short events =
        r.status == transport::IoResult::Status::WouldBlock ? poll_events(r.wait_for) : POLLOUT;
    if (wait_for(fd_, events, deadline) <= 0) return true;
  }
  return true;
}

void WireClient::send_raw(wire::ByteView bytes) {
  if (tls_) {
    std::size_t sent = 0;
    if (!write_tls(bytes, std::chrono::steady_clock::now() + std::chrono::seconds(10), sent) ||
        sent < bytes.size()) {
      throw std::runtime_error("send failed");
    }
    return;
  }
  std::size_t at = 0;
  while (at < bytes.size()) {
    const ssize_t n = ::send(fd_, bytes.data() + at, bytes.size() - at, MSG_NOSIGNAL);
    if (n <= 0) throw std::runtime_error("send failed");
    at += static_cast<std::size_t>(n);
  }
}

std::size_t WireClient::send_some(wire::ByteView bytes, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::size_t at = 0;
  if (tls_) {
    write_tls(bytes, deadline, at);
    return at;
  }
  while (at < bytes.size()) {
    const ssize_t n =
        ::send(fd_, bytes.data() + at, bytes.size() - at, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      at += static_cast<std::size_t>(n);
      continue;
    }
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return at;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return at;
    pollfd p{fd_, POLLOUT, 0};
    ::poll(&p, 1, static_cast<int>(left.count()));
  }
  return at;
}

void WireClient::send(const wire::Message& message) { send_raw(wire::encode(message)); }

bool WireClient::read_some(std::chrono::milliseconds timeout) {
  if (peer_closed_ || fd_ < 0) return false;
  std::uint8_t buffer[65536];
  ssize_t n = 0;
  if (tls_) {
    if (!tls_->has_buffered_input() &&
        wait_for(fd_, POLLIN, std::chrono::steady_clock::now() + timeout) <= 0) {
      return false;
    }
    const transport::IoResult r = tls_->read(std::span(buffer, sizeof buffer));
    if (r.status == transport::IoResult::Status::WouldBlock) return true;
    if (r.status != transport::IoResult::Status::Done) {
      peer_closed_ = true;
      return false;
    }
    n = static_cast<ssize_t>(r.bytes);
  } else {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return false;
    n = ::recv(fd_, buffer, sizeof buffer, 0);
    if (n <= 0) {
      peer_closed_ = true;
      return false;
    }
  }
  Collector sink(inbox_, heartbeats_);
  if (decoder_.feed(wire::ByteView(buffer, static_cast<std::size_t>(n)), sink)) {
    throw std::runtime_error("the agent sent a malformed frame");
  }
  return true;
}

std::optional<Received> WireClient::receive(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (inbox_.empty()) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return std::nullopt;
    if (!read_some(left) && peer_closed_) return std::nullopt;
  }
  Received r = std::move(inbox_.front());
  inbox_.pop_front();
  return r;
}

std::optional<Received> WireClient::receive_id(std::uint32_t id,
                                               std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    for (auto it = inbox_.begin(); it != inbox_.end(); ++it) {
      if (wire::id_of(it->message) == id) {
        Received r = std::move(*it);
        inbox_.erase(it);
        return r;
      }
    }
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return std::nullopt;
    if (!read_some(left) && peer_closed_) return std::nullopt;
  }
}

bool WireClient::wait_closed(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (!peer_closed_) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    read_some(left);
  }
  return true;
}

wire::Hello WireClient::handshake(std::uint32_t heartbeat_ms) {
  const std::uint32_t id = next_id();
  send(wire::Hello{id,
                   wire::kProtocolVersion,
                   wire::kCapIso | wire::kCapHotplug,
                   heartbeat_ms,
                   wire::AuthMethod::None,
                   {},
                   "wire test client"});
  auto answer = receive_id(id);
  if (!answer || !answer->as<wire::Hello>()) throw std::runtime_error("no HELLO from the agent");
  return *answer->as<wire::Hello>();
}

Expected<std::uint32_t, std::int32_t> WireClient::request(wire::Message request) {
  const std::uint32_t id = next_id();
  std::visit(
      [id](auto& m) {
        if constexpr (requires { m.id; }) m.id = id;
      },
      request);
  send(request);
  auto answer = receive_id(id);
  if (!answer) throw std::runtime_error("no answer to a request");
  if (const auto* reply = answer->as<wire::Reply>()) return reply->value;
  if (const auto* error = answer->as<wire::Error>()) {
    last_error_text_ = error->text;
    return Unexpected{error->code};
  }
  throw std::runtime_error("unexpected answer to a request");
}

std::vector<wire::DeviceInfo> WireClient::list() {
  const std::uint32_t id = next_id();
  send(wire::ListDevices{id});
  auto answer = receive_id(id);
  if (!answer || !answer->as<wire::DeviceList>()) throw std::runtime_error("no DEVICE_LIST");
  return answer->as<wire::DeviceList>()->devices;
}

}  // namespace usbnet::test
