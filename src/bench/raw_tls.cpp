#include "bench/raw_tls.h"

#include <openssl/ssl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <stdexcept>
#include <vector>

#include "bench/loopback_socket.h"
#include "bench/raw_command.h"
#include "bench/warm_up.h"
#include "security/tls_context.h"

namespace usbnet::bench {

namespace {

using Clock = std::chrono::steady_clock;
using security::TlsContext;
using security::TlsRole;
using security::TlsSession;

using Command = RawCommand;

std::shared_ptr<TlsContext> make_context(TlsRole role, const security::KeyPair& key) {
  auto made = TlsContext::create(role, key);
  if (!made) throw std::runtime_error("the raw TLS baseline: " + made.error());
  return *made;
}

// Lets in the peer with exactly this key, as usbnet's pinning and authorized_clients do.
security::PeerVerifier only(const security::PublicKey& expected) {
  return [expected](const security::PeerCertificate& peer) {
    if (peer.key && *peer.key == expected) {
      return security::Verdict::accept(security::PeerIdentity{
          security::PeerIdentity::Trust::PinnedAgent, peer.key, peer.fingerprint, peer.subject});
    }
    return security::Verdict::refuse("the peer presented another key (" + peer.fingerprint + ")");
  };
}

// A blocking TLS connection over `fd` (taken over), its handshake done; closed with it.
class TlsLink {
 public:
  TlsLink(int fd, std::shared_ptr<const TlsContext> context, const security::PublicKey& peer)
      : fd_(fd), session_(std::move(context), only(peer)) {
    if (!session_.ssl() || SSL_set_fd(session_.ssl(), fd_) != 1 ||
        SSL_do_handshake(session_.ssl()) != 1) {
      const std::string why = session_.failure_reason();
      ::close(fd_);
      throw std::runtime_error("the raw TLS baseline's handshake failed: " + why);
    }
  }
  ~TlsLink() { ::close(fd_); }
  TlsLink(const TlsLink&) = delete;
  TlsLink& operator=(const TlsLink&) = delete;

  bool read_all(void* data, std::size_t n) {
    auto* p = static_cast<char*>(data);
    while (n > 0) {
      std::size_t got = 0;
      if (SSL_read_ex(session_.ssl(), p, n, &got) != 1) return false;
      p += got;
      n -= got;
    }
    return true;
  }
  // Blocking, without partial writes: SSL_write_ex returns when all of it is sent.
  bool write_all(const void* data, std::size_t n) {
    std::size_t sent = 0;
    return n == 0 || SSL_write_ex(session_.ssl(), data, n, &sent) == 1;
  }
  // Whatever arrives, up to n bytes; 0 at the end.
  std::size_t read_some(void* data, std::size_t n) {
    std::size_t got = 0;
    return SSL_read_ex(session_.ssl(), data, n, &got) == 1 ? got : 0;
  }
  std::string negotiated() const {
    return std::string(SSL_get_cipher_name(session_.ssl())) + ", " +
           SSL_get_version(session_.ssl());
  }

 private:
  int fd_;
  TlsSession session_;
};

// One connection at a time, one command per connection, answered with one byte so that the
// client starts its clock on a connection that is fully set up.
void serve_one(TlsLink& link, std::vector<char>& buffer) {
  Command c{};
  const char ready = 1;
  if (!link.read_all(&c, sizeof c) || c.request > buffer.size() || c.response > buffer.size() ||
      !link.write_all(&ready, 1)) {
    return;
  }
  if (c.mode == kPingPong) {
    while (link.read_all(buffer.data(), c.request) && link.write_all(buffer.data(), c.response)) {
    }
  } else if (c.mode == kStreamOut) {
    for (std::uint64_t sent = 0; sent < c.total; sent += c.response) {
      if (!link.write_all(buffer.data(), std::min<std::uint64_t>(c.response, c.total - sent))) {
        return;
      }
    }
  } else if (c.mode == kStreamIn) {
    std::uint64_t received = 0;
    while (received < c.total) {
      const std::size_t n = link.read_some(buffer.data(), c.request);
      if (n == 0) return;
      received += n;
    }
    link.write_all(&ready, 1);
  }
}

[[noreturn]] void serve(int listener, const security::KeyPair& server_key,
                        const security::PublicKey& client_key) {
  const auto context = make_context(TlsRole::Server, server_key);
  std::vector<char> buffer(16 << 20);
  for (;;) {
    const int fd = ::accept(listener, nullptr, nullptr);
    if (fd < 0) continue;
    set_tcp_options(fd);
    try {
      TlsLink link(fd, context, client_key);
      serve_one(link, buffer);
      // Wait for the client to close, so that the next connection never finds this one busy.
      while (link.read_some(buffer.data(), buffer.size()) > 0) {
      }
    } catch (const std::exception&) {
      // A failed handshake: the client says so.
    }
  }
}

double rate(std::size_t bytes, Clock::time_point start) {
  return static_cast<double>(bytes) / std::chrono::duration<double>(Clock::now() - start).count();
}

void require(bool ok) {
  if (!ok) throw std::runtime_error("the raw TLS baseline connection failed");
}

std::uint32_t u32(std::size_t n) { return static_cast<std::uint32_t>(n); }

// A connection to the raw server with the command sent and its answer read.
std::unique_ptr<TlsLink> open_session(int port, std::shared_ptr<const TlsContext> context,
                                      const security::PublicKey& server_key, const Command& c) {
  auto link = std::make_unique<TlsLink>(connect_to_loopback(port), std::move(context), server_key);
  char ready = 0;
  if (!link->write_all(&c, sizeof c) || !link->read_all(&ready, 1)) {
    throw std::runtime_error("the raw TLS baseline server did not answer");
  }
  return link;
}

}  // namespace

RawTlsServer::RawTlsServer(const security::KeyPair& server_key, const security::KeyPair& client_key)
    : server_key_(server_key.public_key()),
      client_context_(make_context(TlsRole::Client, client_key)) {
  const int listener = listen_on_loopback(port_);
  pid_ = ::fork();
  if (pid_ == 0) {
    // The child never returns into the driver's code, whatever happens.
    try {
      serve(listener, server_key, client_key.public_key());
    } catch (const std::exception& e) {
      std::fprintf(stderr, "usbnet-bench: the raw TLS server: %s\n", e.what());
    }
    ::_exit(1);
  }
  ::close(listener);
}

RawTlsServer::~RawTlsServer() {
  ::kill(pid_, SIGKILL);
  ::waitpid(pid_, nullptr, 0);
}

std::chrono::nanoseconds RawTlsServer::median_round_trip(std::size_t request, std::size_t response,
                                                         int iterations) {
  auto s = open_session(port_, client_context_, server_key_,
                        Command{kPingPong, u32(request), u32(response), 0});
  std::vector<char> out(request), in(response);
  std::vector<std::chrono::nanoseconds> times;
  const int warm_up = warm_up_rounds(iterations);
  for (int i = 0; i < iterations + warm_up; ++i) {
    const auto start = Clock::now();
    require(s->write_all(out.data(), out.size()) && s->read_all(in.data(), in.size()));
    if (i >= warm_up) times.push_back(Clock::now() - start);
  }
  std::nth_element(times.begin(), times.begin() + times.size() / 2, times.end());
  return times[times.size() / 2];
}

double RawTlsServer::pipelined_throughput(std::size_t chunk, int depth, std::size_t total,
                                          bool in) {
  constexpr std::size_t kSmall = 8;
  auto s = open_session(port_, client_context_, server_key_,
                        in ? Command{kPingPong, u32(kSmall), u32(chunk), 0}
                           : Command{kPingPong, u32(chunk), u32(kSmall), 0});
  std::vector<char> data(chunk), small(kSmall);
  const std::size_t count = total / chunk;
  const auto send_one = [&] {
    require(in ? s->write_all(small.data(), kSmall) : s->write_all(data.data(), chunk));
  };
  const auto start = Clock::now();
  std::size_t sent = 0;
  for (; sent < count && sent < static_cast<std::size_t>(depth); ++sent) send_one();
  for (std::size_t done = 0; done < count; ++done) {
    require(in ? s->read_all(data.data(), chunk) : s->read_all(small.data(), kSmall));
    if (sent < count) {
      send_one();
      ++sent;
    }
  }
  return rate(count * chunk, start);
}

double RawTlsServer::stream_throughput(std::size_t chunk, std::size_t total, bool in) {
  auto s = open_session(port_, client_context_, server_key_,
                        Command{in ? kStreamOut : kStreamIn, u32(chunk), u32(chunk), total});
  std::vector<char> buffer(chunk);
  const auto start = Clock::now();
  for (std::size_t done = 0; done < total; done += chunk) {
    const std::size_t n = std::min(chunk, total - done);
    require(in ? s->read_all(buffer.data(), n) : s->write_all(buffer.data(), n));
  }
  if (!in) require(s->read_all(buffer.data(), 1));  // the server has read everything
  return rate(total, start);
}

std::string negotiated_tls(int port, const security::KeyPair& client_key,
                           const security::PublicKey& server_key) {
  TlsLink link(connect_to_loopback(port), make_context(TlsRole::Client, client_key), server_key);
  return link.negotiated();
}

}  // namespace usbnet::bench
