// Round trips: every message kind, and many random valid messages, survive encode -> decode ->
// encode unchanged.
#include <catch2/catch.hpp>
#include <random>

#include "usbnet/wire.h"
#include "wire_vectors.h"

using namespace usbnet::wire;

namespace {

void check_round_trip(const Message& message) {
  const Bytes frame = encode(message);
  REQUIRE(frame.size() >= kFrameLengthSize + sizeof(MessageHeader));
  auto decoded = decode(ByteView(frame).subspan(kFrameLengthSize));
  REQUIRE(decoded.has_value());
  CHECK(*decoded == message);
  CHECK(encode(*decoded) == frame);
}

class RandomMessages {
 public:
  explicit RandomMessages(std::uint32_t seed) : rng_(seed) {}

  std::uint32_t u32() { return static_cast<std::uint32_t>(rng_()); }
  std::uint32_t below(std::uint32_t n) { return u32() % n; }
  std::uint8_t u8() { return static_cast<std::uint8_t>(rng_()); }
  Bytes bytes(std::size_t n) {
    Bytes b(n);
    for (auto& x : b) x = u8();
    return b;
  }

  DeviceInfo device() {
    DeviceInfo d;
    d.device_id = u32();
    d.parent_id = u32();
    d.bus_number = u8();
    d.device_address = u8();
    d.speed = static_cast<std::uint8_t>(below(kMaxSpeed + 1));
    d.active_config = u8();
    d.port_numbers = bytes(below(kMaxPortNumbers + 1));
    for (auto& b : d.device_descriptor) b = u8();
    for (unsigned i = below(4); i > 0; --i) d.configs.push_back(bytes(below(300)));
    d.bos = bytes(below(60));
    for (unsigned i = below(6); i > 0; --i) {
      d.strings.push_back({u8(), static_cast<std::uint16_t>(u32()), bytes(below(256))});
    }
    return d;
  }

  // A valid URB_SUBMIT; its payload points into `storage`.
  UrbSubmit submit(Bytes& storage) {
    UrbSubmit u;
    u.trans_id = u32();
    u.type = static_cast<UrbType>(below(4));
    u.flags = below(16);
    u.handle = u32();
    u.timeout_ms = u32();
    const bool in = below(2) == 1;
    if (u.type == UrbType::Control) {
      u.data_len = below(4097);
      u.setup = {static_cast<std::uint8_t>(in ? 0xc0 : 0x40),
                 u8(),
                 u8(),
                 u8(),
                 u8(),
                 u8(),
                 static_cast<std::uint8_t>(u.data_len & 0xff),
                 static_cast<std::uint8_t>(u.data_len >> 8)};
    } else {
      u.endpoint = static_cast<std::uint8_t>((in ? 0x80 : 0) | (1 + below(15)));
      if (u.type == UrbType::Iso) {
        for (unsigned i = 1 + below(32); i > 0; --i) u.iso_lengths.push_back(below(1025));
        for (auto l : u.iso_lengths) u.data_len += l;
      } else {
        u.data_len = below(1u << 20);
      }
    }
    if (!u.is_in()) {
      storage = bytes(below(u.data_len + 1) % 5000);
      u.payload = storage;
    }
    return u;
  }

  UrbComplete complete(Bytes& storage) {
    UrbComplete c;
    c.trans_id = u32();
    c.status = static_cast<UrbStatus>(below(kMaxUrbStatus + 1));
    if (below(3) == 0) {
      const bool in = below(2) == 1;  // an OUT completion carries no bytes
      for (unsigned i = 1 + below(32); i > 0; --i) {
        c.iso.push_back({static_cast<UrbStatus>(below(kMaxUrbStatus + 1)), below(1025)});
        if (in) c.data_len += c.iso.back().actual_length;
      }
    } else {
      c.actual_length = below(1u << 20);
      c.data_len = below(2) ? c.actual_length : 0;
    }
    storage = bytes(below(c.data_len + 1) % 5000);
    c.payload = storage;
    return c;
  }

 private:
  std::mt19937 rng_;
};

}  // namespace

TEST_CASE("round trip of every golden message") {
  for (const auto& v : test::golden_vectors()) {
    INFO(v.name);
    check_round_trip(v.message);
  }
}

TEST_CASE("round trip of random valid messages") {
  RandomMessages random(20261124);
  Bytes storage;
  for (int i = 0; i < 300; ++i) {
    check_round_trip(random.submit(storage));
    check_round_trip(random.complete(storage));
    check_round_trip(DeviceArrived{random.device()});
    check_round_trip(UrbData{random.u32(), random.u32(), storage});
    check_round_trip(Error{random.u32(), -1 - static_cast<std::int32_t>(random.below(12)),
                           std::string(random.below(kMaxTextLength + 1), 'x')});
  }
  DeviceList list{7, {}};
  for (int i = 0; i < 40; ++i) list.devices.push_back(random.device());
  check_round_trip(list);
}

TEST_CASE("round trip at the limits") {
  Bytes auth(kMaxAuthLength, 0xa5);
  check_round_trip(Hello{0xffffffff, kProtocolVersion, kKnownCapabilities, 0xffffffff,
                         AuthMethod::Token, auth, std::string(255, 'n')});
  check_round_trip(Error{0, error_code::kOther, std::string(kMaxTextLength, 't')});
  check_round_trip(SetConfiguration{1, 2, 255});
  check_round_trip(SetConfiguration{1, 2, -1});

  UrbSubmit iso;
  iso.type = UrbType::Iso;
  iso.endpoint = 0x8f;
  iso.iso_lengths.assign(kMaxIsoPackets, 3);
  iso.data_len = 3 * kMaxIsoPackets;
  check_round_trip(iso);

  // The largest payload a frame can carry inline alongside a URB_DATA header.
  Bytes piece(kMaxFrameLength - sizeof(MessageHeader) - sizeof(UrbDataBody), 0x5a);
  check_round_trip(UrbData{1, 0, piece});
  CHECK(encode(UrbData{1, 0, piece}).size() == kFrameLengthSize + kMaxFrameLength);
}
