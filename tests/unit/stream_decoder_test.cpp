// The incremental decoder: any split of the byte stream yields the same messages; errors stop it
// for good; nothing is buffered past the frame cap.
#include <catch2/catch.hpp>
#include <cstring>
#include <random>

#include "hex.h"
#include "usbnet/wire.h"
#include "wire_vectors.h"

using namespace usbnet::wire;
using namespace usbnet::wire::test;

namespace {

// Records what the decoder delivers as re-encoded frames (payload views die with the call).
struct Recorder : MessageSink {
  std::vector<std::string> events;
  void on_heartbeat() override { events.push_back("heartbeat"); }
  void on_message(Message&& m) override { events.push_back(to_hex(encode(m))); }
};

// Every golden vector, with heartbeats between some of them.
Bytes conversation(std::vector<std::string>& expected) {
  Bytes stream;
  int i = 0;
  for (const GoldenVector& v : golden_vectors()) {
    const Bytes frame = from_hex(v.hex);
    stream.insert(stream.end(), frame.begin(), frame.end());
    expected.push_back(v.hex);
    if (++i % 3 == 0) {
      const auto hb = heartbeat_frame();
      stream.insert(stream.end(), hb.begin(), hb.end());
      expected.push_back("heartbeat");
    }
  }
  return stream;
}

}  // namespace

TEST_CASE("whole stream in one call") {
  std::vector<std::string> expected;
  const Bytes stream = conversation(expected);
  StreamDecoder decoder;
  Recorder sink;
  CHECK_FALSE(decoder.feed(stream, sink));
  CHECK(sink.events == expected);
  CHECK(decoder.buffered() == 0);
}

TEST_CASE("one byte at a time") {
  std::vector<std::string> expected;
  const Bytes stream = conversation(expected);
  StreamDecoder decoder;
  Recorder sink;
  for (std::uint8_t byte : stream) REQUIRE_FALSE(decoder.feed(ByteView(&byte, 1), sink));
  CHECK(sink.events == expected);
  CHECK(decoder.buffered() == 0);
}

TEST_CASE("random splits") {
  std::vector<std::string> expected;
  const Bytes stream = conversation(expected);
  std::mt19937 rng(42);
  for (int round = 0; round < 200; ++round) {
    StreamDecoder decoder;
    Recorder sink;
    std::size_t at = 0;
    while (at < stream.size()) {
      const std::size_t n = std::min<std::size_t>(1 + rng() % 97, stream.size() - at);
      REQUIRE_FALSE(decoder.feed(ByteView(stream).subspan(at, n), sink));
      at += n;
    }
    REQUIRE(sink.events == expected);
  }
}

TEST_CASE("a large frame split across many reads") {
  Bytes payload(kMaxFrameLength - sizeof(MessageHeader) - sizeof(UrbDataBody));
  for (std::size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<std::uint8_t>(i % 251);
  const Bytes frame = encode(UrbData{77, 1024, payload});
  StreamDecoder decoder;
  struct : MessageSink {
    int count = 0;
    Bytes received;
    void on_message(Message&& m) override {
      ++count;
      const auto& data = std::get<UrbData>(m);
      received.assign(data.payload.begin(), data.payload.end());
      CHECK(data.trans_id == 77);
      CHECK(data.offset == 1024);
    }
  } sink;
  for (std::size_t at = 0; at < frame.size(); at += 65536) {
    REQUIRE_FALSE(decoder.feed(
        ByteView(frame).subspan(at, std::min<std::size_t>(65536, frame.size() - at)), sink));
  }
  CHECK(sink.count == 1);
  CHECK(sink.received == payload);
}

TEST_CASE("a length prefix over the cap fails before anything is buffered") {
  for (std::uint32_t length : {kMaxFrameLength + 1, 0xffffffffu}) {
    StreamDecoder decoder;
    Recorder sink;
    const Bytes prefix{static_cast<std::uint8_t>(length), static_cast<std::uint8_t>(length >> 8),
                       static_cast<std::uint8_t>(length >> 16),
                       static_cast<std::uint8_t>(length >> 24)};
    // Split inside the prefix, too: the check must not depend on the prefix arriving whole.
    CHECK_FALSE(decoder.feed(ByteView(prefix).first(2), sink));
    CHECK(decoder.feed(ByteView(prefix).subspan(2), sink) == WireError::FrameTooLarge);
    CHECK(decoder.failed());
    CHECK(decoder.buffered() == 0);
  }
}

TEST_CASE("a configured smaller cap is honoured") {
  StreamDecoder decoder(64);
  Recorder sink;
  const Bytes frame = from_hex(golden_vectors().front().hex);  // 36 bytes: under the cap
  CHECK_FALSE(decoder.feed(frame, sink));
  const Bytes big = encode(UrbData{1, 0, Bytes(100)});
  CHECK(decoder.feed(big, sink) == WireError::FrameTooLarge);
}

TEST_CASE("after an error the decoder stays failed and delivers nothing more") {
  std::vector<std::string> expected;
  const Bytes good = conversation(expected);
  Bytes stream = from_hex(golden_vectors().front().hex);
  stream[5] = 'X';  // break the first frame's magic
  stream.insert(stream.end(), good.begin(), good.end());
  StreamDecoder decoder;
  Recorder sink;
  CHECK(decoder.feed(stream, sink) == WireError::BadMagic);
  CHECK(sink.events.empty());
  CHECK(decoder.feed(good, sink) == WireError::BadMagic);
  CHECK(sink.events.empty());
}

TEST_CASE("messages before a bad frame are delivered, none after") {
  Bytes stream = from_hex(golden_vectors()[0].hex);
  Bytes bad = from_hex(golden_vectors()[2].hex);  // reply
  bad[8] = 0x77;                                  // unknown type
  Bytes after = from_hex(golden_vectors()[3].hex);
  stream.insert(stream.end(), bad.begin(), bad.end());
  stream.insert(stream.end(), after.begin(), after.end());
  StreamDecoder decoder;
  Recorder sink;
  CHECK(decoder.feed(stream, sink) == WireError::UnknownType);
  CHECK(sink.events == std::vector<std::string>{golden_vectors()[0].hex});
}

// ---- large payloads read straight to their place ---------------------------------------------

namespace {

// Gives every URB payload it is offered a place of its own, and records what it gets.
struct Lander : MessageSink {
  bool accept = true;
  std::size_t offers = 0;
  Bytes place;
  std::vector<Bytes> payloads;
  std::vector<bool> in_place;  // per message: its payload view is the place given
  std::span<std::uint8_t> payload_destination(const Message&, std::size_t length) override {
    ++offers;
    if (!accept) return {};
    place.assign(length, 0);
    return place;
  }
  void on_message(Message&& m) override {
    std::visit(
        [&](const auto& x) {
          if constexpr (requires { x.payload; }) {
            payloads.emplace_back(x.payload.begin(), x.payload.end());
            in_place.push_back(!place.empty() && x.payload.data() == place.data());
          }
        },
        m);
  }
};

Bytes pattern(std::size_t n) {
  Bytes b(n);
  for (std::size_t i = 0; i < n; ++i) b[i] = static_cast<std::uint8_t>(i * 7 + 3);
  return b;
}

// Feeds `stream` the way the transport reads it: `chunk` bytes into the decoder, or straight
// into the direct target while there is one.
void read_like_the_transport(StreamDecoder& decoder, MessageSink& sink, const Bytes& stream,
                             std::size_t chunk) {
  std::size_t at = 0;
  while (at < stream.size()) {
    const auto target = decoder.direct_target();
    const std::size_t n = std::min(target.empty() ? chunk : target.size(), stream.size() - at);
    if (target.empty()) {
      REQUIRE_FALSE(decoder.feed(ByteView(stream).subspan(at, n), sink));
    } else {
      std::memcpy(target.data(), stream.data() + at, n);
      REQUIRE_FALSE(decoder.direct_received(n, sink));
    }
    at += n;
  }
}

}  // namespace

TEST_CASE("a large URB payload is read straight to the place the sink names") {
  const Bytes payload = pattern(65536);
  UrbComplete c;
  c.trans_id = 9;
  c.actual_length = c.data_len = static_cast<std::uint32_t>(payload.size());
  c.payload = payload;
  Bytes stream = encode(c);
  const Bytes piece = encode(UrbData{9, 65536, ByteView(payload).first(20000)});
  stream.insert(stream.end(), piece.begin(), piece.end());
  for (std::size_t chunk :
       {std::size_t{1}, std::size_t{32}, std::size_t{100}, std::size_t{4096}, std::size_t{70000}}) {
    StreamDecoder decoder;
    Lander sink;
    read_like_the_transport(decoder, sink, stream, chunk);
    REQUIRE(sink.payloads.size() == 2);
    CHECK(sink.payloads[0] == payload);
    CHECK(sink.payloads[1] == Bytes(payload.begin(), payload.begin() + 20000));
    // Offered only while enough of the payload was still to come.
    if (chunk < 20000) {
      CHECK(sink.offers == 2);
      CHECK(sink.in_place == std::vector<bool>{true, true});
    }
    CHECK(decoder.buffered() == 0);
    CHECK(decoder.direct_target().empty());
  }
}

TEST_CASE("a declined payload, or a small one, is gathered as before") {
  const Bytes big = pattern(50000), small = pattern(StreamDecoder::kDirectMinimum - 1);
  Bytes stream = encode(UrbData{1, 0, big});
  const Bytes second = encode(UrbData{2, 0, small});
  stream.insert(stream.end(), second.begin(), second.end());
  StreamDecoder decoder;
  Lander sink;
  sink.accept = false;
  read_like_the_transport(decoder, sink, stream, 1000);
  REQUIRE(sink.payloads.size() == 2);
  CHECK(sink.payloads[0] == big);
  CHECK(sink.payloads[1] == small);
  CHECK(sink.offers == 1);  // the small one was never offered; the big one once
}

TEST_CASE("bytes fed while a payload is read directly still land in place") {
  const Bytes payload = pattern(30000);
  const Bytes stream = encode(UrbData{5, 0, payload});
  StreamDecoder decoder;
  Lander sink;
  REQUIRE_FALSE(decoder.feed(ByteView(stream).first(100), sink));
  REQUIRE_FALSE(decoder.direct_target().empty());
  REQUIRE_FALSE(decoder.feed(ByteView(stream).subspan(100), sink));
  REQUIRE(sink.payloads.size() == 1);
  CHECK(sink.payloads[0] == payload);
  CHECK(sink.in_place[0]);
}

TEST_CASE("a URB read directly is still checked: a bad field fails when the frame is whole") {
  const Bytes payload = pattern(40000);
  UrbComplete c;
  c.trans_id = 3;
  c.actual_length = c.data_len = static_cast<std::uint32_t>(payload.size());
  c.payload = payload;
  Bytes stream = encode(c);
  const auto expected = GENERATE(WireError::BadStatus, WireError::PayloadTooLarge);
  if (expected == WireError::BadStatus) {
    stream[kFrameLengthSize + sizeof(MessageHeader)] = 0x55;  // status out of range: never offered
  } else {
    // actual_length and data_len 100: the head alone is fine, the payload too large for it.
    for (std::size_t field : {std::size_t{4}, std::size_t{8}}) {
      const std::size_t at = kFrameLengthSize + sizeof(MessageHeader) + field;
      stream[at] = 100;
      stream[at + 1] = stream[at + 2] = stream[at + 3] = 0;
    }
  }
  StreamDecoder decoder;
  Lander sink;
  std::optional<WireError> error;
  for (std::size_t at = 0; at < stream.size() && !error;) {
    const auto target = decoder.direct_target();
    const std::size_t n =
        std::min<std::size_t>(target.empty() ? 64 : target.size(), stream.size() - at);
    if (target.empty()) {
      error = decoder.feed(ByteView(stream).subspan(at, n), sink);
    } else {
      std::memcpy(target.data(), stream.data() + at, n);
      error = decoder.direct_received(n, sink);
    }
    at += n;
  }
  CHECK(error == expected);
  CHECK(sink.offers == (expected == WireError::BadStatus ? 0u : 1u));
  CHECK(sink.payloads.empty());
  CHECK(decoder.failed());
}
