// The incremental decoder: any split of the byte stream yields the same messages; errors stop it
// for good; nothing is buffered past the frame cap.
#include <catch2/catch.hpp>
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
