// The decoder never allocates past the frame cap, whatever lengths and counts a frame claims.
// This program replaces the global allocator to record the largest single allocation.
#include <atomic>
#include <catch2/catch.hpp>
#include <cstdlib>
#include <new>

#include "hex.h"
#include "usbnet/wire.h"
#include "wire_vectors.h"

namespace {
std::atomic<std::size_t> largest_allocation{0};
}  // namespace

void* operator new(std::size_t size) {
  std::size_t seen = largest_allocation.load();
  while (size > seen && !largest_allocation.compare_exchange_weak(seen, size)) {
  }
  if (void* p = std::malloc(size == 0 ? 1 : size)) return p;
  throw std::bad_alloc();
}
// GCC cannot tell that these are the replacements pairing with operator new above.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }
#pragma GCC diagnostic pop

using namespace usbnet::wire;
using namespace usbnet::wire::test;

namespace {

struct Discard : MessageSink {
  void on_message(Message&&) override {}
};

std::size_t largest_allocation_while_feeding(const Bytes& stream) {
  StreamDecoder decoder;
  Discard sink;
  largest_allocation = 0;
  decoder.feed(stream, sink);
  return largest_allocation.load();
}

Bytes with_prefix(std::uint32_t length, const Bytes& body) {
  Bytes frame;
  frame.reserve(kFrameLengthSize + body.size());
  for (std::size_t i = 0; i < kFrameLengthSize; ++i) frame.push_back((length >> (8 * i)) & 0xff);
  for (std::uint8_t b : body) frame.push_back(b);
  return frame;
}

}  // namespace

TEST_CASE("a huge length prefix allocates nothing") {
  CHECK(largest_allocation_while_feeding(with_prefix(0xffffffff, {0, 0x42, 0x53, 0x55})) == 0);
  CHECK(largest_allocation_while_feeding(with_prefix(kMaxFrameLength + 1, {})) == 0);
}

TEST_CASE("a frame in progress costs at most its declared length, which is capped") {
  // The prefix promises a full-size frame but only a few bytes come.
  const std::size_t used =
      largest_allocation_while_feeding(with_prefix(kMaxFrameLength, {0, 0x42, 0x53, 0x55}));
  CHECK(used <= kFrameLengthSize + kMaxFrameLength);
}

TEST_CASE("counts and lengths inside a small frame cannot make the decoder allocate more") {
  // DEVICE_LIST claiming 1024 devices in a 20-byte body.
  Bytes list = from_hex("00425355 1100 0000 02000000 00040000");
  CHECK(largest_allocation_while_feeding(
            with_prefix(static_cast<std::uint32_t>(list.size()), list)) < 4096);
  // URB_SUBMIT claiming 4096 iso packets and a 64 MiB transfer, with no packet lengths present.
  Bytes submit = from_hex(
      "00425355 3000 0000 01000000 03 81 00000000 0000 00000004 0000000000000000 01000000 00000000 "
      "0010 0000");
  CHECK(largest_allocation_while_feeding(
            with_prefix(static_cast<std::uint32_t>(submit.size()), submit)) < 4096);
  // ERROR claiming 1024 bytes of text that are not there.
  Bytes error = from_hex("00425355 0200 0000 01000000 ffffffff 0004");
  CHECK(largest_allocation_while_feeding(
            with_prefix(static_cast<std::uint32_t>(error.size()), error)) < 4096);
}
