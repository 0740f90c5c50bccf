// The framed stream without processes: over a socketpair (a TCP channel on one end, raw bytes
// on the other) and over a scripted in-memory channel that behaves as a TLS channel may
// (a handshake, reads and writes that would block, input held with no descriptor readiness).
// The stream is driven by hand, as a driver would, and by its Asio driver for backpressure.
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstring>
#include <deque>
#include <numeric>
#include <thread>

#include "transport/asio_connection.h"
#include "transport/framed_stream.h"
#include "transport/tcp_channel.h"
#include "usbnet/pieces.h"
#include "usbnet/stream_decoder.h"

using namespace usbnet;
using namespace usbnet::transport;
using namespace std::chrono_literals;
using Clock = std::chrono::steady_clock;

namespace {

// What the handler saw: each message with its payload copied (views die with the call).
struct Seen {
  wire::MessageType type;
  std::uint32_t id;
  wire::Bytes payload;
  const std::uint8_t* payload_at;
};

class Recorder : public StreamHandler {
 public:
  void on_message(wire::Message&& m) override {
    wire::ByteView payload;
    std::visit(
        [&](const auto& x) {
          if constexpr (requires { x.payload; }) payload = x.payload;
        },
        m);
    seen.push_back({wire::type_of(m), wire::id_of(m), wire::Bytes(payload.begin(), payload.end()),
                    payload.data()});
  }
  std::span<std::uint8_t> payload_destination(const wire::Message& head,
                                              std::size_t length) override {
    if (landing.empty() || !std::holds_alternative<wire::UrbComplete>(head)) return {};
    return std::span<std::uint8_t>(landing).first(length);
  }
  void on_closed(const std::string& reason) override {
    ++closed;
    close_reason = reason;
  }
  bool wants_input() const override { return accepting.load(); }

  std::vector<Seen> seen;
  wire::Bytes landing;  // where a URB_COMPLETE's payload is read, when not empty
  int closed = 0;
  std::string close_reason;
  std::atomic<bool> accepting{true};
};

struct CountingDriver : StreamDriver {
  void wake() override { ++wakes; }
  std::atomic<int> wakes{0};
};

// A connected pair: the stream's end (a TCP channel, whose options a UNIX socket ignores) and
// the raw peer's.
struct SocketPair {
  SocketPair() {
    int fds[2];
    REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0);
    ours = fds[0];
    peer = fds[1];
  }
  ~SocketPair() { ::close(peer); }
  int ours = -1;  // owned by the channel
  int peer = -1;
};

void peer_write(int fd, wire::ByteView bytes) {
  while (!bytes.empty()) {
    const ssize_t n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
    REQUIRE(n > 0);
    bytes = bytes.subspan(static_cast<std::size_t>(n));
  }
}

// Decodes what a raw peer receives.
struct PeerReader : wire::MessageSink {
  void on_heartbeat() override { ++heartbeats; }
  void on_message(wire::Message&& m) override { messages.push_back(copy(m)); }
  static wire::Message copy(const wire::Message& m) { return m; }

  // Decodes `bytes` (what the channel wrote), keeping the payloads alive.
  void feed(const wire::Bytes& bytes) {
    kept.push_back(bytes);
    REQUIRE_FALSE(decoder.feed(kept.back(), *this));
  }
  // Reads what the socket has now.
  void read_from(int fd) {
    std::uint8_t buffer[65536];
    for (;;) {
      const ssize_t n = ::recv(fd, buffer, sizeof buffer, MSG_DONTWAIT);
      if (n <= 0) return;
      feed(wire::Bytes(buffer, buffer + n));
    }
  }

  wire::StreamDecoder decoder;
  std::deque<wire::Bytes> kept;
  std::vector<wire::Message> messages;
  int heartbeats = 0;
};

// A channel in memory, scripted as a TLS channel may behave.
class ScriptedChannel final : public ByteChannel {
 public:
  IoResult handshake() override {
    if (handshake_steps_left > 0) {
      --handshake_steps_left;
      return IoResult::would_block(kReadable);
    }
    return IoResult::done(0);
  }
  IoResult read(std::span<std::uint8_t> into) override {
    if (read_needs_writable) return IoResult::would_block(kWritable);
    if (inbox.empty()) return IoResult::would_block(kReadable);
    const std::size_t n = std::min({into.size(), inbox.size(), read_chunk});
    std::copy_n(inbox.begin(), n, into.begin());
    inbox.erase(inbox.begin(), inbox.begin() + static_cast<std::ptrdiff_t>(n));
    return IoResult::done(n);
  }
  IoResult write(std::span<const iovec> from) override {
    ++writes;
    std::size_t taken = 0;
    for (const iovec& v : from) {
      const std::size_t n = std::min(v.iov_len, room);
      const auto* bytes = static_cast<const std::uint8_t*>(v.iov_base);
      outbox.insert(outbox.end(), bytes, bytes + n);
      room -= n;
      taken += n;
      if (n < v.iov_len) break;
    }
    if (taken == 0) return IoResult::would_block(kWritable);
    return IoResult::done(taken);
  }
  bool has_buffered_input() const override { return !inbox.empty(); }
  void shutdown() override { shut = true; }
  int pollable_fd() const override { return -1; }

  int handshake_steps_left = 0;
  bool read_needs_writable = false;
  wire::Bytes inbox;
  std::size_t read_chunk = 7;  // a record at a time: never all of it in one read
  wire::Bytes outbox;
  std::size_t room = SIZE_MAX;
  int writes = 0;
  bool shut = false;
};

StreamOptions options(std::uint32_t piece_size = wire::kDefaultPieceSize) {
  StreamOptions o;
  o.heartbeat = 50ms;
  o.dead_after = 200ms;
  o.piece_size = piece_size;
  o.peer_name = "test peer";
  return o;
}

wire::Bytes pattern(std::size_t n) {
  wire::Bytes b(n);
  for (std::size_t i = 0; i < n; ++i) b[i] = static_cast<std::uint8_t>(i % 251);
  return b;
}

// A started stream over a scripted channel, with its handler and a driver that counts wakes.
struct OverScript {
  explicit OverScript(std::uint32_t piece_size = wire::kDefaultPieceSize, int handshake_steps = 0)
      : stream(make_channel(handshake_steps), options(piece_size), handler, driver) {
    stream.start();
  }
  std::unique_ptr<ScriptedChannel> make_channel(int handshake_steps) {
    auto made = std::make_unique<ScriptedChannel>();
    made->handshake_steps_left = handshake_steps;
    channel = made.get();
    return made;
  }
  ScriptedChannel* channel = nullptr;
  Recorder handler;
  CountingDriver driver;
  FramedStream stream;
};

// A started stream over a socket pair; the test plays the raw peer.
struct OverSocket {
  OverSocket()
      : stream(std::make_unique<TcpChannel>(pair.ours, 65536), options(), handler, driver) {
    stream.start();
  }
  SocketPair pair;
  Recorder handler;
  CountingDriver driver;
  FramedStream stream;
};

}  // namespace

TEST_CASE(
    "frames travel both ways over a socket pair, and a sender on an idle stream writes "
    "at once") {
  OverSocket s;
  auto& [pair, handler, driver, stream] = s;

  // No driver call: the sender wrote it itself.
  REQUIRE(stream.send(wire::ListDevices{41}));
  PeerReader peer;
  peer.read_from(pair.peer);
  REQUIRE(peer.messages.size() == 1);
  CHECK(std::get<wire::ListDevices>(peer.messages[0]).id == 41);

  wire::Bytes both = wire::encode(wire::Reply{7, 3});
  const wire::Bytes second = wire::encode(wire::Open{8, 2});
  both.insert(both.end(), second.begin(), second.end());
  peer_write(pair.peer, both);
  stream.readable();
  REQUIRE(handler.seen.size() == 2);
  CHECK(handler.seen[0].type == wire::MessageType::Reply);
  CHECK(handler.seen[0].id == 7);
  CHECK(handler.seen[1].type == wire::MessageType::Open);
  CHECK(stream.interest().reading == kReadable);
  CHECK(stream.interest().writing == kNoReadiness);
}

TEST_CASE("frames a thread sends while corked leave in one write at uncork") {
  OverScript s;
  auto& [channel, handler, driver, stream] = s;
  ScriptedChannel& c = *channel;
  stream.send(wire::Reply{1, 0});
  CHECK(c.writes == 1);
  stream.cork();
  stream.send(wire::Reply{2, 0});
  stream.send(wire::Reply{3, 0});
  stream.send(wire::Reply{4, 0});
  CHECK(c.writes == 1);
  CHECK(stream.queued_bytes() > 0);
  stream.uncork();
  CHECK(c.writes == 2);
  CHECK(stream.queued_bytes() == 0);
  PeerReader peer;
  peer.feed(c.outbox);
  REQUIRE(peer.messages.size() == 4);
  CHECK(std::get<wire::Reply>(peer.messages[3]).id == 4);
}

TEST_CASE(
    "a small frame goes out between the pieces of a large payload, and the pieces "
    "reassemble it") {
  OverScript s(4096);
  auto& [channel, handler, driver, stream] = s;
  ScriptedChannel& c = *channel;

  const wire::Bytes payload = pattern(64 * 1024);
  wire::UrbComplete complete;
  complete.trans_id = 9;
  complete.actual_length = complete.data_len = static_cast<std::uint32_t>(payload.size());
  complete.payload = payload;
  c.room = 10000;  // the first write takes two or three pieces, then the channel is full
  REQUIRE(stream.send_urb(complete, nullptr));
  CHECK(stream.interest().writing == kWritable);
  CHECK(driver.wakes > 0);  // told to wait for room
  const std::size_t queued = stream.queued_bytes();
  CHECK(queued > payload.size() - 10000);

  REQUIRE(stream.send(wire::Reply{77, 0}));  // waits behind the full channel, ahead of pieces
  c.room = SIZE_MAX;
  stream.writable();
  CHECK(stream.queued_bytes() == 0);
  CHECK(stream.interest().writing == kNoReadiness);

  PeerReader peer;
  peer.feed(c.outbox);
  std::size_t reply_at = 0, pieces_before = 0, pieces_after = 0;
  wire::Bytes reassembled;
  for (std::size_t i = 0; i < peer.messages.size(); ++i) {
    const wire::Message& m = peer.messages[i];
    if (const auto* head = std::get_if<wire::UrbComplete>(&m)) {
      reassembled.assign(head->payload.begin(), head->payload.end());
    } else if (const auto* piece = std::get_if<wire::UrbData>(&m)) {
      CHECK(piece->offset == reassembled.size());
      reassembled.insert(reassembled.end(), piece->payload.begin(), piece->payload.end());
      ++(reply_at == 0 ? pieces_before : pieces_after);
    } else if (std::holds_alternative<wire::Reply>(m)) {
      reply_at = i;
    }
  }
  CHECK(reply_at > 0);
  CHECK(pieces_before >= 1);
  CHECK(pieces_after >= 10);
  CHECK(reassembled == payload);
}

TEST_CASE("a withdrawn URB leaves nothing queued and the stream no reference to its payload") {
  OverScript s(4096);
  auto& [channel, handler, driver, stream] = s;
  ScriptedChannel& c = *channel;
  c.room = 0;
  const wire::Bytes payload = pattern(20000);
  wire::UrbSubmit submit;
  submit.trans_id = 5;
  submit.endpoint = 0x01;
  submit.data_len = static_cast<std::uint32_t>(payload.size());
  submit.payload = payload;
  REQUIRE(stream.send_urb(submit, nullptr));
  CHECK(stream.queued_bytes() >= payload.size());
  CHECK(stream.withdraw(5) == Withdrawn::NotSent);
  CHECK(stream.queued_bytes() == 0);
  CHECK(stream.withdraw(5) == Withdrawn::AlreadySent);
}

TEST_CASE(
    "a heartbeat goes out when this side has been quiet, and a silent peer closes the stream") {
  OverSocket s;
  auto& [pair, handler, driver, stream] = s;
  const auto start = Clock::now();
  CHECK(stream.next_deadline() <= start + 50ms);

  stream.tick(start + 10ms);  // not yet
  PeerReader peer;
  peer.read_from(pair.peer);
  CHECK(peer.heartbeats == 0);
  stream.tick(start + 60ms);
  peer.read_from(pair.peer);
  CHECK(peer.heartbeats == 1);
  CHECK(stream.next_deadline() > start + 60ms);  // the next one is an interval away
  CHECK_FALSE(stream.closing());

  stream.tick(start + 250ms);  // 200 ms without a frame from the peer
  CHECK(stream.closing());
  CHECK(driver.wakes > 0);
  stream.finish_close();
  CHECK(handler.closed == 1);
  CHECK(handler.close_reason.find("nothing received for") == 0);
  stream.finish_close();
  CHECK(handler.closed == 1);
}

TEST_CASE("the peer's HELLO sets how long it may be silent") {
  OverSocket s;
  auto& [pair, handler, driver, stream] = s;
  const auto start = Clock::now();
  stream.set_peer_heartbeat(1000ms);  // dead after three of them
  stream.tick(start + 500ms);
  CHECK_FALSE(stream.closing());
  stream.tick(start + 3100ms);
  CHECK(stream.closing());
}

TEST_CASE("a large payload is read straight into the place its handler names") {
  OverSocket s;
  auto& [pair, handler, driver, stream] = s;
  handler.landing.resize(256 * 1024);

  const wire::Bytes payload = pattern(200 * 1024);
  wire::UrbComplete complete;
  complete.trans_id = 3;
  complete.actual_length = complete.data_len = static_cast<std::uint32_t>(payload.size());
  complete.payload = payload;
  const wire::Bytes frame = wire::encode(complete);
  // The head and a little of the payload first: the stream asks where the rest belongs.
  peer_write(pair.peer, wire::ByteView(frame).first(100));
  stream.readable();
  CHECK(handler.seen.empty());
  std::thread writer([&] { peer_write(pair.peer, wire::ByteView(frame).subspan(100)); });
  while (handler.seen.empty()) stream.readable();
  writer.join();
  REQUIRE(handler.seen.size() == 1);
  CHECK(handler.seen[0].payload_at == handler.landing.data());
  CHECK(handler.seen[0].payload == payload);
  CHECK(std::equal(payload.begin(), payload.end(), handler.landing.begin()));
}

TEST_CASE("a malformed frame closes the stream with a reason, and the peer is told why") {
  OverSocket s;
  auto& [pair, handler, driver, stream] = s;
  const std::uint8_t garbage[] = {0, 0, 0, 8, 0xde, 0xad, 0xbe, 0xef, 1, 2, 3, 4};
  peer_write(pair.peer, garbage);
  stream.readable();
  CHECK(stream.closing());
  CHECK(handler.seen.empty());
  PeerReader peer;
  peer.read_from(pair.peer);
  REQUIRE(peer.messages.size() == 1);
  const auto& error = std::get<wire::Error>(peer.messages[0]);
  CHECK(error.text.find("protocol error") == 0);
  stream.finish_close();
  CHECK(handler.closed == 1);
  CHECK(handler.close_reason.find("protocol error: ") == 0);
  // The channel is shut down: the peer sees the end.
  std::uint8_t byte;
  CHECK(::recv(pair.peer, &byte, 1, 0) == 0);
}

TEST_CASE("nothing is written before the channel's handshake is done") {
  OverScript s(wire::kDefaultPieceSize, 2);  // start() takes the first step
  auto& [channel, handler, driver, stream] = s;
  ScriptedChannel& c = *channel;
  CHECK(stream.interest().reading == kReadable);  // what the handshake waits for
  REQUIRE(stream.send(wire::Hello{1, wire::kProtocolVersion, 0, 5000, {}, {}, "x"}));
  CHECK(c.outbox.empty());
  CHECK(stream.queued_bytes() > 0);
  stream.readable();  // the second step
  CHECK(c.outbox.empty());
  stream.readable();  // done: the HELLO goes out
  CHECK(stream.queued_bytes() == 0);
  PeerReader peer;
  peer.feed(c.outbox);
  REQUIRE(peer.messages.size() == 1);
  CHECK(std::holds_alternative<wire::Hello>(peer.messages[0]));
}

TEST_CASE(
    "input the channel holds without descriptor readiness is read at once, and a read "
    "may wait for the descriptor to be writable") {
  OverScript s;
  auto& [channel, handler, driver, stream] = s;
  ScriptedChannel& c = *channel;
  CHECK_FALSE(stream.interest().now);
  for (std::uint32_t id = 1; id <= 3; ++id) {
    const wire::Bytes frame = wire::encode(wire::Reply{id, id});
    c.inbox.insert(c.inbox.end(), frame.begin(), frame.end());
  }
  CHECK(stream.interest().now);
  stream.readable();  // seven bytes at a time, all of it
  CHECK(handler.seen.size() == 3);
  CHECK_FALSE(stream.interest().now);

  c.read_needs_writable = true;
  stream.readable();
  CHECK(stream.interest().reading == kWritable);
}

TEST_CASE(
    "the Asio driver stops reading a peer while its handler declines input, and reads "
    "again when told") {
  boost::asio::io_context io;
  SocketPair pair;
  auto handler = std::make_shared<Recorder>();
  handler->accepting = false;
  StreamOptions quiet = options();
  quiet.heartbeat = 10s;  // no heartbeats, no silent peer: only what the test does
  quiet.dead_after = 60s;
  auto connection = std::make_shared<AsioConnection>(
      io.get_executor(), std::make_unique<TcpChannel>(pair.ours, 65536), quiet, handler);
  connection->start();
  for (std::uint32_t id = 1; id <= 5; ++id) peer_write(pair.peer, wire::encode(wire::Reply{id, 0}));
  io.run_for(100ms);
  CHECK(handler->seen.empty());

  handler->accepting = true;
  connection->stream().input_wanted();
  io.run_for(100ms);
  CHECK(handler->seen.size() == 5);

  // A policy on the queue: the peer does not read, so what this side sends piles up.
  const wire::Bytes big = pattern(1 << 20);
  wire::UrbComplete complete;
  complete.trans_id = 11;
  complete.actual_length = complete.data_len = static_cast<std::uint32_t>(big.size());
  complete.payload = big;
  REQUIRE(connection->stream().send_urb(complete, nullptr));
  io.run_for(20ms);
  CHECK(connection->stream().queued_bytes() > 0);
  CHECK(connection->stream().interest().writing == kWritable);

  connection->stream().close("test over");
  io.run_for(100ms);
  CHECK(handler->closed == 1);
  CHECK(handler->close_reason == "test over");
}
