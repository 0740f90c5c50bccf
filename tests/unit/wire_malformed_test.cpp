// Malformed input: each fault gives its own specific error.
#include <catch2/catch.hpp>
#include <set>

#include "hex.h"
#include "usbnet/wire.h"
#include "wire_vectors.h"

using namespace usbnet::wire;
using namespace usbnet::wire::test;

namespace {

Bytes vector_frame(std::string_view name) {
  for (const GoldenVector& v : golden_vectors()) {
    if (v.name == name) return from_hex(v.hex);
  }
  FAIL("no vector " << name);
  return {};
}

// Decodes a frame (prefix included; the prefix is re-computed so that only the body is at fault).
std::optional<WireError> decode_error(Bytes frame) {
  const auto length = static_cast<std::uint32_t>(frame.size() - kFrameLengthSize);
  for (std::size_t i = 0; i < kFrameLengthSize; ++i) frame[i] = (length >> (8 * i)) & 0xff;
  auto result = decode(ByteView(frame).subspan(kFrameLengthSize));
  if (result) return std::nullopt;
  return result.error();
}

void put32(Bytes& frame, std::size_t offset, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) frame.at(offset + i) = (v >> (8 * i)) & 0xff;
}
void put16(Bytes& frame, std::size_t offset, std::uint16_t v) {
  frame.at(offset) = v & 0xff;
  frame.at(offset + 1) = v >> 8;
}

// Offsets within a frame, length prefix included.
constexpr std::size_t kType = 8, kReserved = 10, kBody = 16;
// URB_SUBMIT body fields.
constexpr std::size_t kUrbType = kBody + 0, kEndpoint = kBody + 1, kFlags = kBody + 2,
                      kSetupLen = kBody + 6, kDataLen = kBody + 8, kSetup = kBody + 12,
                      kIsoPackets = kBody + 28, kSubmitReserved = kBody + 30;
// URB_COMPLETE body fields.
constexpr std::size_t kStatus = kBody + 0, kActual = kBody + 4, kCompleteDataLen = kBody + 8,
                      kIsoStatus0 = kBody + 16;

}  // namespace

TEST_CASE("every golden vector decodes cleanly before it is damaged") {
  for (const GoldenVector& v : golden_vectors()) {
    INFO(v.name);
    CHECK_FALSE(decode_error(from_hex(v.hex)));
  }
}

TEST_CASE("bad magic") {
  Bytes f = vector_frame("reply");
  f[4] ^= 0x01;
  CHECK(decode_error(f) == WireError::BadMagic);
  // Garbage shorter than a header but long enough for a magic is still "bad magic".
  CHECK(decode_error(Bytes{0, 0, 0, 0, 'G', 'E', 'T', ' '}) == WireError::BadMagic);
}

TEST_CASE("unknown message kind") {
  Bytes f = vector_frame("reply");
  put16(f, kType, 0x7777);
  CHECK(decode_error(f) == WireError::UnknownType);
  put16(f, kType, 0x0000);
  CHECK(decode_error(f) == WireError::UnknownType);
}

TEST_CASE("reserved header field not zero") {
  Bytes f = vector_frame("reply");
  put16(f, kReserved, 1);
  CHECK(decode_error(f) == WireError::ReservedNotZero);
}

TEST_CASE("truncation of every fixed-size message") {
  for (const char* name :
       {"hello", "error", "reply", "device_list", "device_arrived", "device_left", "open", "close",
        "set_configuration", "get_configuration", "claim_interface", "release_interface",
        "set_alt_setting", "clear_halt", "reset_device", "kernel_driver"}) {
    INFO(name);
    Bytes f = vector_frame(name);
    f.pop_back();
    CHECK(decode_error(f) == WireError::Truncated);
  }
  // A URB_SUBMIT cut inside its fixed part, and one cut inside its iso packet lengths.
  Bytes submit = vector_frame("urb_submit_control_in");
  submit.resize(kBody + 20);
  CHECK(decode_error(submit) == WireError::Truncated);
  Bytes iso = vector_frame("urb_submit_iso_in");
  iso.pop_back();
  CHECK(decode_error(iso) == WireError::Truncated);
  // A header alone, cut short.
  CHECK(decode_error(Bytes{0, 0, 0, 0, 0x00, 0x42, 0x53, 0x55, 0x03}) == WireError::Truncated);
}

TEST_CASE("a length that disagrees with the body") {
  for (const char* name : {"reply", "open", "list_devices", "urb_cancel", "device_list", "hello"}) {
    INFO(name);
    Bytes f = vector_frame(name);
    f.push_back(0);
    CHECK(decode_error(f) == WireError::LengthMismatch);
  }
  // An ERROR whose text_length claims more than the frame holds.
  Bytes e = vector_frame("error");
  put16(e, kBody + 4, 15);
  CHECK(decode_error(e) == WireError::Truncated);
}

TEST_CASE("setup_len other than 0 or 8") {
  Bytes control = vector_frame("urb_submit_control_in");
  put16(control, kSetupLen, 0);
  CHECK(decode_error(control) == WireError::BadSetupLength);
  put16(control, kSetupLen, 9);
  CHECK(decode_error(control) == WireError::BadSetupLength);
  Bytes bulk = vector_frame("urb_submit_interrupt_in");
  put16(bulk, kSetupLen, 8);
  CHECK(decode_error(bulk) == WireError::BadSetupLength);
}

TEST_CASE("URB_SUBMIT field ranges") {
  SECTION("urb_type") {
    Bytes f = vector_frame("urb_submit_interrupt_in");
    f[kUrbType] = 4;
    CHECK(decode_error(f) == WireError::BadUrbType);
  }
  SECTION("endpoint") {
    Bytes f = vector_frame("urb_submit_interrupt_in");
    f[kEndpoint] = 0x91;  // reserved bit 4
    CHECK(decode_error(f) == WireError::BadEndpoint);
    f[kEndpoint] = 0x80;  // interrupt on endpoint 0
    CHECK(decode_error(f) == WireError::BadEndpoint);
  }
  SECTION("flags") {
    Bytes f = vector_frame("urb_submit_bulk_out");
    put32(f, kFlags, 0x10);
    CHECK(decode_error(f) == WireError::BadFlags);
  }
  SECTION("control data_len must equal wLength") {
    Bytes f = vector_frame("urb_submit_control_in");
    put32(f, kDataLen, 17);
    CHECK(decode_error(f) == WireError::SetupMismatch);
  }
  SECTION("non-control setup bytes must be zero") {
    Bytes f = vector_frame("urb_submit_interrupt_in");
    f[kSetup + 3] = 1;
    CHECK(decode_error(f) == WireError::SetupMismatch);
  }
  SECTION("data_len over the cap") {
    Bytes f = vector_frame("urb_submit_interrupt_in");
    put32(f, kDataLen, kMaxTransferLength + 1);
    CHECK(decode_error(f) == WireError::TransferTooLarge);
  }
  SECTION("iso packet count") {
    Bytes iso = vector_frame("urb_submit_iso_in");
    put16(iso, kIsoPackets, 0);
    iso.resize(iso.size() - 8);
    CHECK(decode_error(iso) == WireError::BadIsoPackets);
    Bytes bulk = vector_frame("urb_submit_interrupt_in");
    put16(bulk, kIsoPackets, 1);
    put32(bulk, kDataLen, 4);
    bulk.insert(bulk.end(), {4, 0, 0, 0});
    CHECK(decode_error(bulk) == WireError::BadIsoPackets);
    Bytes many = vector_frame("urb_submit_iso_in");
    put16(many, kIsoPackets, kMaxIsoPackets + 1);
    CHECK(decode_error(many) == WireError::BadIsoPackets);
  }
  SECTION("iso lengths must add up to data_len") {
    Bytes f = vector_frame("urb_submit_iso_in");
    put32(f, kDataLen, 17);
    CHECK(decode_error(f) == WireError::IsoLengthMismatch);
  }
  SECTION("more payload than data_len") {
    Bytes f = vector_frame("urb_submit_bulk_out");
    f.push_back('!');
    CHECK(decode_error(f) == WireError::PayloadTooLarge);
  }
  SECTION("OUT data in an IN URB") {
    Bytes f = vector_frame("urb_submit_interrupt_in");
    f.push_back(0);
    CHECK(decode_error(f) == WireError::UnexpectedPayload);
  }
  SECTION("reserved") {
    Bytes f = vector_frame("urb_submit_interrupt_in");
    put16(f, kSubmitReserved, 1);
    CHECK(decode_error(f) == WireError::ReservedNotZero);
  }
}

TEST_CASE("URB_COMPLETE field ranges") {
  Bytes f = vector_frame("urb_complete_interrupt_in");
  put32(f, kStatus, kMaxUrbStatus + 1);
  CHECK(decode_error(f) == WireError::BadStatus);

  Bytes iso = vector_frame("urb_complete_iso_in");
  put32(iso, kIsoStatus0, 7);
  CHECK(decode_error(iso) == WireError::BadStatus);

  Bytes mismatch = vector_frame("urb_complete_interrupt_in");
  put32(mismatch, kActual, 3);
  CHECK(decode_error(mismatch) == WireError::BadDataLength);

  Bytes iso_sum = vector_frame("urb_complete_iso_in");
  put32(iso_sum, kCompleteDataLen, 5);
  CHECK(decode_error(iso_sum) == WireError::BadDataLength);

  // An isochronous OUT completion: packets with lengths, no bytes carried.
  UrbComplete iso_out;
  iso_out.trans_id = 9;
  iso_out.iso = {{UrbStatus::Completed, 100}, {UrbStatus::Error, 0}};
  Bytes out_frame = encode(iso_out);
  CHECK(decode(ByteView(out_frame).subspan(kFrameLengthSize)).has_value());

  Bytes extra = vector_frame("urb_complete_interrupt_in");
  extra.push_back(0);
  CHECK(decode_error(extra) == WireError::PayloadTooLarge);

  Bytes huge = vector_frame("urb_complete_stall");
  put32(huge, kCompleteDataLen, kMaxTransferLength + 1);
  put32(huge, kActual, kMaxTransferLength + 1);
  CHECK(decode_error(huge) == WireError::TransferTooLarge);
}

TEST_CASE("HELLO field ranges") {
  Bytes version = vector_frame("hello");
  put16(version, kBody, 2);
  CHECK(decode_error(version) == WireError::UnsupportedVersion);
  // A future version's HELLO of another size still reads as "unsupported version".
  version.resize(kBody + 2);
  CHECK(decode_error(version) == WireError::UnsupportedVersion);

  Bytes caps = vector_frame("hello");
  put32(caps, kBody + 4, 0x80);
  CHECK(decode_error(caps) == WireError::UnknownCapability);

  Bytes auth = vector_frame("hello");
  auth[kBody + 12] = 9;
  CHECK(decode_error(auth) == WireError::BadAuthMethod);

  Bytes auth_len = vector_frame("hello");
  put16(auth_len, kBody + 14, kMaxAuthLength + 1);
  CHECK(decode_error(auth_len) == WireError::AuthTooLong);
}

TEST_CASE("ERROR field ranges") {
  Bytes code = vector_frame("error");
  put32(code, kBody, 0);
  CHECK(decode_error(code) == WireError::BadErrorCode);
  put32(code, kBody, static_cast<std::uint32_t>(-13));
  CHECK(decode_error(code) == WireError::BadErrorCode);

  Bytes text = vector_frame("error");
  put16(text, kBody + 4, kMaxTextLength + 1);
  CHECK(decode_error(text) == WireError::TextTooLong);
}

TEST_CASE("device record field ranges") {
  // Offsets of the record inside DEVICE_ARRIVED (its body is the record).
  constexpr std::size_t kSpeed = kBody + 10, kPortCount = kBody + 12, kPorts = kBody + 13,
                        kRecordReserved = kBody + 39, kStringCount = kBody + 42;
  Bytes speed = vector_frame("device_arrived");
  speed[kSpeed] = 6;
  CHECK(decode_error(speed) == WireError::BadSpeed);

  Bytes ports = vector_frame("device_arrived");
  ports[kPortCount] = 8;
  CHECK(decode_error(ports) == WireError::TooManyPorts);

  Bytes stray_port = vector_frame("device_arrived");
  stray_port[kPorts + 6] = 3;  // beyond port_count
  CHECK(decode_error(stray_port) == WireError::ReservedNotZero);

  Bytes reserved = vector_frame("device_arrived");
  reserved[kRecordReserved] = 1;
  CHECK(decode_error(reserved) == WireError::ReservedNotZero);

  Bytes strings = vector_frame("device_arrived");
  put16(strings, kStringCount, kMaxStringsPerDevice + 1);
  CHECK(decode_error(strings) == WireError::TooManyStrings);

  Bytes event_id = vector_frame("device_arrived");
  put32(event_id, 12, 3);
  CHECK(decode_error(event_id) == WireError::ReservedNotZero);

  Bytes count = vector_frame("device_list");
  put32(count, kBody, kMaxDevicesPerList + 1);
  CHECK(decode_error(count) == WireError::TooManyDevices);
}

TEST_CASE("request field ranges") {
  Bytes config = vector_frame("set_configuration");
  put32(config, kBody + 4, 256);
  CHECK(decode_error(config) == WireError::BadConfiguration);
  put32(config, kBody + 4, static_cast<std::uint32_t>(-2));
  CHECK(decode_error(config) == WireError::BadConfiguration);

  Bytes op = vector_frame("kernel_driver");
  op[kBody + 4] = 3;
  CHECK(decode_error(op) == WireError::BadKernelDriverOp);
}

TEST_CASE("every wire error has a distinct name and a description") {
  std::set<std::string_view> names;
  for (int e = 0; e <= static_cast<int>(WireError::TooManyPending); ++e) {
    const auto error = static_cast<WireError>(e);
    CHECK(names.insert(wire_error_name(error)).second);
    CHECK(wire_error_description(error).size() > 10);
  }
}
