// The framed stream over TLS (transport::TlsChannel) without processes: both ends of a socket
// pair, each a TLS channel under an Asio-driven stream on one io_context. Frames, heartbeats and
// large payloads go through; each side judges the other's key in the handshake.
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <catch2/catch.hpp>
#include <chrono>
#include <numeric>

#include "security/ed25519_key.h"
#include "security/tls_context.h"
#include "transport/asio_connection.h"
#include "transport/tls_channel.h"
#include "usbnet/stream_decoder.h"

using namespace usbnet;
using namespace usbnet::transport;
using namespace usbnet::security;
using namespace std::chrono_literals;

namespace {

class Recorder : public StreamHandler {
 public:
  void on_message(wire::Message&& m) override {
    // The payload is read into `landing` (payload_destination); `received` counts its bytes.
    if (const auto* c = std::get_if<wire::UrbComplete>(&m)) {
      completed_at = c->payload.data();
      received += c->payload.size();
    }
    if (const auto* d = std::get_if<wire::UrbData>(&m)) {
      pieces_direct += d->payload.data() == landing.data() + d->offset;
      received += d->payload.size();
    }
    messages.push_back(wire::type_of(m));
  }
  std::span<std::uint8_t> payload_destination(const wire::Message& head,
                                              std::size_t length) override {
    if (landing.empty()) return {};
    if (std::holds_alternative<wire::UrbComplete>(head)) {
      return std::span<std::uint8_t>(landing).first(length);
    }
    if (const auto* d = std::get_if<wire::UrbData>(&head)) {
      return std::span<std::uint8_t>(landing).subspan(d->offset, length);
    }
    return {};
  }
  void on_closed(const std::string& reason) override {
    ++closed;
    close_reason = reason;
  }
  bool wants_input() const override { return accepting; }

  std::vector<wire::MessageType> messages;
  std::size_t received = 0;
  const std::uint8_t* completed_at = nullptr;
  wire::Bytes landing;
  int pieces_direct = 0;
  int closed = 0;
  std::string close_reason;
  bool accepting = true;
};

KeyPair new_key() {
  auto key = KeyPair::generate();
  REQUIRE(key);
  return std::move(*key);
}

PeerVerifier expect_key(const PublicKey& expected, std::string refusal) {
  return [expected, refusal](const PeerCertificate& peer) {
    if (peer.key && *peer.key == expected) {
      return Verdict::accept({PeerIdentity::Trust::AuthorizedKey, peer.key, peer.fingerprint, {}});
    }
    return Verdict::refuse(refusal + " " + peer.fingerprint);
  };
}

wire::Bytes pattern(std::size_t n) {
  wire::Bytes b(n);
  for (std::size_t i = 0; i < n; ++i) b[i] = static_cast<std::uint8_t>(i * 7 + i / 251);
  return b;
}

// An agent end and a client end of a TLS connection over a socket pair, each with its key.
struct TlsPair {
  explicit TlsPair(StreamOptions options = quiet(), int send_buffer = 0) {
    int fds[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0);
    if (send_buffer > 0) {
      for (int fd : fds) ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &send_buffer, sizeof send_buffer);
    }
    server_fd = fds[0];
    client_fd = fds[1];
    stream_options = options;
  }

  void start(PeerVerifier server_verifier, PeerVerifier client_verifier) {
    auto server_ctx = TlsContext::create(TlsRole::Server, server_key);
    auto client_ctx = TlsContext::create(TlsRole::Client, client_key);
    REQUIRE(server_ctx);
    REQUIRE(client_ctx);
    server = std::make_shared<AsioConnection>(
        io.get_executor(),
        std::make_unique<TlsChannel>(
            server_fd, 65536,
            std::make_unique<TlsSession>(*server_ctx, std::move(server_verifier))),
        stream_options, server_handler);
    client = std::make_shared<AsioConnection>(
        io.get_executor(),
        std::make_unique<TlsChannel>(
            client_fd, 65536,
            std::make_unique<TlsSession>(*client_ctx, std::move(client_verifier))),
        stream_options, client_handler);
    server->start();
    client->start();
  }
  void start_trusting() {
    start(expect_key(client_key.public_key(), "unknown client"),
          expect_key(server_key.public_key(), "unknown agent"));
  }

  // Runs the io_context until `done` or the bound (a hang fails the test, it does not hang it).
  template <typename Fn>
  bool run_until(Fn done, std::chrono::milliseconds bound = 10s) {
    const auto until = std::chrono::steady_clock::now() + bound;
    while (!done()) {
      if (std::chrono::steady_clock::now() > until) return false;
      io.run_for(5ms);
    }
    return true;
  }

  static StreamOptions quiet() {
    StreamOptions o;
    o.heartbeat = 10s;
    o.dead_after = 60s;
    return o;
  }

  boost::asio::io_context io;
  int server_fd = -1;
  int client_fd = -1;
  StreamOptions stream_options;
  KeyPair server_key = new_key();
  KeyPair client_key = new_key();
  std::shared_ptr<Recorder> server_handler = std::make_shared<Recorder>();
  std::shared_ptr<Recorder> client_handler = std::make_shared<Recorder>();
  std::shared_ptr<AsioConnection> server;
  std::shared_ptr<AsioConnection> client;
};

}  // namespace

TEST_CASE("frames cross a TLS connection both ways, after a handshake that checks both keys") {
  TlsPair tls;
  tls.start_trusting();
  // Sent before the handshake is done: it waits for it.
  REQUIRE(tls.client->stream().send(wire::Hello{1, wire::kProtocolVersion, 0, 5000, {}, {}, "c"}));
  REQUIRE(tls.run_until([&] { return !tls.server_handler->messages.empty(); }));
  CHECK(tls.server_handler->messages[0] == wire::MessageType::Hello);
  for (std::uint32_t id = 1; id <= 100; ++id) {
    REQUIRE(tls.server->stream().send(wire::Reply{id, id}));
  }
  REQUIRE(tls.run_until([&] { return tls.client_handler->messages.size() == 100; }));
  tls.client->stream().close("done");
  REQUIRE(tls.run_until([&] { return tls.server_handler->closed == 1; }));
  CHECK(tls.client_handler->close_reason == "done");
  CHECK(tls.server_handler->close_reason == "connection closed by peer");
}

TEST_CASE("a large payload crosses TLS in pieces, decrypted straight into its destination") {
  // Small socket buffers: records often leave a tail with the channel, which must follow.
  TlsPair tls(TlsPair::quiet(), 8192);
  tls.start_trusting();
  const wire::Bytes big = pattern(8 << 20);
  tls.client_handler->landing.resize(big.size());
  wire::UrbComplete complete;
  complete.trans_id = 7;
  complete.actual_length = complete.data_len = static_cast<std::uint32_t>(big.size());
  complete.payload = big;
  REQUIRE(tls.server->stream().send_urb(complete, nullptr));
  // A small message sent meanwhile arrives too (before the payload's end).
  REQUIRE(tls.server->stream().send(wire::Reply{3, 4}));
  REQUIRE(tls.run_until([&] { return tls.client_handler->received == big.size(); }, 30s));
  CHECK((tls.client_handler->landing == big));
  CHECK(tls.client_handler->completed_at == tls.client_handler->landing.data());
  CHECK(tls.client_handler->pieces_direct > 0);
  CHECK(std::count(tls.client_handler->messages.begin(), tls.client_handler->messages.end(),
                   wire::MessageType::Reply) == 1);
  CHECK(tls.server->stream().queued_bytes() == 0);
}

TEST_CASE("a reader that stops reading holds the TLS writer back, and everything arrives later") {
  TlsPair tls(TlsPair::quiet(), 8192);
  tls.start_trusting();
  // Both handshakes done (data flows only after them): a message from the client arrived.
  // Reading readiness alone is no proof: the server also waits for readable while it waits for
  // the client's Finished, and a client that stops reading then never sends it.
  REQUIRE(tls.client->stream().send(wire::Reply{1, 2}));
  REQUIRE(tls.run_until([&] { return !tls.server_handler->messages.empty(); }));
  tls.client_handler->accepting = false;
  const wire::Bytes big = pattern(2 << 20);
  wire::UrbComplete complete;
  complete.trans_id = 9;
  complete.actual_length = complete.data_len = static_cast<std::uint32_t>(big.size());
  complete.payload = big;
  REQUIRE(tls.server->stream().send_urb(complete, nullptr));
  // Until the socket is full (a fixed wait was too short on a loaded machine under TSan).
  CHECK(tls.run_until([&] { return tls.server->stream().interest().writing == kWritable; }));
  CHECK(tls.server->stream().queued_bytes() > 0);
  CHECK(tls.server->stream().interest().writing == kWritable);
  tls.client_handler->landing.resize(big.size());
  tls.client_handler->accepting = true;
  tls.client->stream().input_wanted();
  REQUIRE(tls.run_until([&] { return tls.client_handler->received == big.size(); }, 30s));
  CHECK((tls.client_handler->landing == big));
}

TEST_CASE("heartbeats keep a quiet TLS connection alive past the dead-peer bound") {
  StreamOptions o;
  o.heartbeat = 50ms;
  o.dead_after = 300ms;
  TlsPair tls(o);
  tls.start_trusting();
  // Neither side sends anything but heartbeats, for more than three dead-peer bounds.
  tls.io.run_for(1s);
  CHECK(tls.server_handler->closed == 0);
  CHECK(tls.client_handler->closed == 0);
  CHECK(tls.server_handler->messages.empty());
  // A side that stops reading sees nothing arrive, and gives the peer up.
  tls.client_handler->accepting = false;
  REQUIRE(tls.run_until([&] { return tls.client_handler->closed == 1; }));
  CHECK_THAT(tls.client_handler->close_reason, Catch::StartsWith("nothing received for"));
}

TEST_CASE("an unknown client key is refused in the handshake: nothing reaches either handler") {
  TlsPair tls;
  tls.start(expect_key(new_key().public_key(), "not authorized:"),
            expect_key(tls.server_key.public_key(), "unknown agent"));
  REQUIRE(tls.client->stream().send(wire::Hello{1, wire::kProtocolVersion, 0, 5000, {}, {}, "c"}));
  REQUIRE(tls.run_until(
      [&] { return tls.server_handler->closed == 1 && tls.client_handler->closed == 1; }));
  CHECK(tls.server_handler->messages.empty());
  CHECK(tls.client_handler->messages.empty());
  CHECK_THAT(tls.server_handler->close_reason,
             Catch::Contains("not authorized: " + tls.client_key.public_key().fingerprint()));
  CHECK_THAT(tls.client_handler->close_reason,
             Catch::Contains("the agent refused this client's key"));
}

TEST_CASE("a client refuses an agent whose key is not the expected one") {
  TlsPair tls;
  const KeyPair pinned = new_key();
  tls.start(expect_key(tls.client_key.public_key(), "unknown client"),
            expect_key(pinned.public_key(), "a different agent key:"));
  REQUIRE(tls.run_until(
      [&] { return tls.server_handler->closed == 1 && tls.client_handler->closed == 1; }));
  CHECK_THAT(
      tls.client_handler->close_reason,
      Catch::Contains("a different agent key: " + tls.server_key.public_key().fingerprint()));
  CHECK_THAT(tls.server_handler->close_reason,
             Catch::Contains("the client refused this agent's key"));
  CHECK(tls.server_handler->messages.empty());
}

TEST_CASE("a TLS client that reaches a peer answering in plain usbnet says so") {
  boost::asio::io_context io;
  int fds[2];
  REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0);
  auto ctx = TlsContext::create(TlsRole::Client, new_key());
  REQUIRE(ctx);
  auto handler = std::make_shared<Recorder>();
  auto client = std::make_shared<AsioConnection>(
      io.get_executor(),
      std::make_unique<TlsChannel>(
          fds[0], 65536,
          std::make_unique<TlsSession>(
              *ctx, [](const PeerCertificate&) { return Verdict::refuse("never asked"); })),
      TlsPair::quiet(), handler);
  client->start();
  // What an agent without TLS answers to the ClientHello: an ERROR frame, then the end.
  const wire::Bytes error = wire::encode(wire::Error{0, wire::error_code::kIo, "protocol error"});
  REQUIRE(::send(fds[1], error.data(), error.size(), 0) == static_cast<ssize_t>(error.size()));
  ::shutdown(fds[1], SHUT_WR);
  const auto until = std::chrono::steady_clock::now() + 10s;
  while (handler->closed == 0 && std::chrono::steady_clock::now() < until) io.run_for(5ms);
  REQUIRE(handler->closed == 1);
  CHECK_THAT(handler->close_reason, Catch::Contains("the agent answered without TLS"));
  ::close(fds[1]);
}
