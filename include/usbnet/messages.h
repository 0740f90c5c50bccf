// usbnet messages as C++ values, and their encoding to and decoding from frames.
//
// Variable-length fields that are small (iso packet lists, descriptors, text) are owned. URB
// payloads are views (std::span): a decoded payload points into the frame it came from and is
// valid only as long as that frame; an encoded payload is not copied (EncodedFrame keeps the
// view), so a sender can hand a transfer buffer to the socket without copying it.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <variant>
#include <vector>

#include "usbnet/expected.h"
#include "usbnet/protocol.h"
#include "usbnet/wire_error.h"

namespace usbnet::wire {

using Bytes = std::vector<std::uint8_t>;
using ByteView = std::span<const std::uint8_t>;

struct Hello {
  std::uint32_t id = 0;
  std::uint16_t version = kProtocolVersion;
  std::uint32_t capabilities = 0;
  std::uint32_t heartbeat_ms = 0;
  AuthMethod auth_method = AuthMethod::None;
  Bytes auth;
  std::string name;
  bool operator==(const Hello&) const = default;
};

struct Error {
  std::uint32_t id = 0;  // the failed request, or 0 for the connection as a whole
  std::int32_t code = error_code::kOther;
  std::string text;
  bool operator==(const Error&) const = default;
};

struct Reply {
  std::uint32_t id = 0;
  std::uint32_t value = 0;
  bool operator==(const Reply&) const = default;
};

struct StringDescriptor {
  std::uint8_t index = 0;
  std::uint16_t langid = 0;
  Bytes descriptor;  // raw, starting with bLength and bDescriptorType
  bool operator==(const StringDescriptor&) const = default;
};

struct DeviceInfo {
  std::uint32_t device_id = 0;
  std::uint32_t parent_id = 0;
  std::uint8_t bus_number = 0;
  std::uint8_t device_address = 0;
  std::uint8_t speed = 0;
  std::uint8_t active_config = 0;
  std::vector<std::uint8_t> port_numbers;
  std::array<std::uint8_t, kDeviceDescriptorLength> device_descriptor{};
  std::vector<Bytes> configs;  // raw configuration descriptors, by index
  Bytes bos;                   // raw BOS descriptor, empty if the device has none
  std::vector<StringDescriptor> strings;
  bool operator==(const DeviceInfo&) const = default;
};

struct ListDevices {
  std::uint32_t id = 0;
  bool operator==(const ListDevices&) const = default;
};
struct DeviceList {
  std::uint32_t id = 0;
  std::vector<DeviceInfo> devices;
  bool operator==(const DeviceList&) const = default;
};
struct DeviceArrived {
  DeviceInfo device;
  bool operator==(const DeviceArrived&) const = default;
};
struct DeviceLeft {
  std::uint32_t device_id = 0;
  bool operator==(const DeviceLeft&) const = default;
};

struct Open {
  std::uint32_t id = 0;
  std::uint32_t device_id = 0;
  bool operator==(const Open&) const = default;
};
struct Close {
  std::uint32_t id = 0;
  std::uint32_t handle = 0;
  bool operator==(const Close&) const = default;
};
struct SetConfiguration {
  std::uint32_t id = 0;
  std::uint32_t handle = 0;
  std::int32_t configuration = 0;
  bool operator==(const SetConfiguration&) const = default;
};
struct GetConfiguration {
  std::uint32_t id = 0;
  std::uint32_t handle = 0;
  bool operator==(const GetConfiguration&) const = default;
};
struct ClaimInterface {
  std::uint32_t id = 0;
  std::uint32_t handle = 0;
  std::uint8_t interface_number = 0;
  bool operator==(const ClaimInterface&) const = default;
};
struct ReleaseInterface {
  std::uint32_t id = 0;
  std::uint32_t handle = 0;
  std::uint8_t interface_number = 0;
  bool operator==(const ReleaseInterface&) const = default;
};
struct SetAltSetting {
  std::uint32_t id = 0;
  std::uint32_t handle = 0;
  std::uint8_t interface_number = 0;
  std::uint8_t alt_setting = 0;
  bool operator==(const SetAltSetting&) const = default;
};
struct ClearHalt {
  std::uint32_t id = 0;
  std::uint32_t handle = 0;
  std::uint8_t endpoint = 0;
  bool operator==(const ClearHalt&) const = default;
};
struct ResetDevice {
  std::uint32_t id = 0;
  std::uint32_t handle = 0;
  bool operator==(const ResetDevice&) const = default;
};
struct KernelDriver {
  std::uint32_t id = 0;
  std::uint32_t handle = 0;
  KernelDriverOp op = KernelDriverOp::Query;
  std::uint8_t interface_number = 0;
  bool operator==(const KernelDriver&) const = default;
};

struct UrbSubmit {
  std::uint32_t trans_id = 0;
  UrbType type = UrbType::Bulk;
  std::uint8_t endpoint = 0;
  std::uint32_t flags = 0;
  std::array<std::uint8_t, kSetupLength> setup{};  // all zero unless type is Control
  std::uint32_t data_len = 0;
  std::uint32_t handle = 0;
  std::uint32_t timeout_ms = 0;
  std::vector<std::uint32_t> iso_lengths;  // one per packet for Iso, else empty
  ByteView payload;                        // the first piece of OUT data (may be all of it)

  bool is_in() const;  // direction: from the setup packet for control, else the endpoint
};

struct IsoPacketResult {
  UrbStatus status = UrbStatus::Completed;
  std::uint32_t actual_length = 0;
  bool operator==(const IsoPacketResult&) const = default;
};

struct UrbComplete {
  std::uint32_t trans_id = 0;
  UrbStatus status = UrbStatus::Completed;
  std::uint32_t actual_length = 0;
  std::uint32_t data_len = 0;  // IN bytes in total (this payload and later URB_DATA pieces)
  std::vector<IsoPacketResult> iso;
  ByteView payload;  // the first piece of IN data
};

struct UrbData {
  std::uint32_t trans_id = 0;
  std::uint32_t offset = 0;
  ByteView payload;
};

struct UrbCancel {
  std::uint32_t trans_id = 0;
  bool operator==(const UrbCancel&) const = default;
};

using Message = std::variant<Hello, Error, Reply, ListDevices, DeviceList, DeviceArrived,
                             DeviceLeft, Open, Close, SetConfiguration, GetConfiguration,
                             ClaimInterface, ReleaseInterface, SetAltSetting, ClearHalt,
                             ResetDevice, KernelDriver, UrbSubmit, UrbComplete, UrbData, UrbCancel>;

MessageType type_of(const Message& message);
std::uint32_t id_of(const Message& message);  // trans_id or request id; 0 for events

// Payload views compare by content.
bool operator==(const UrbSubmit& a, const UrbSubmit& b);
bool operator==(const UrbComplete& a, const UrbComplete& b);
bool operator==(const UrbData& a, const UrbData& b);

// One encoded frame: `head` is the length prefix, the message header and the body up to the
// payload; `payload` follows it on the wire without having been copied.
struct EncodedFrame {
  Bytes head;
  ByteView payload;
  std::size_t size() const { return head.size() + payload.size(); }
};

// Encodes a message into a frame. The message must be valid (what decode() would accept);
// encoding an invalid one is a programming error and asserts in debug builds.
EncodedFrame encode_frame(const Message& message);
// The frame as one contiguous byte string (head and payload).
Bytes encode(const Message& message);
// The 4-byte heartbeat frame.
std::array<std::uint8_t, kFrameLengthSize> heartbeat_frame();

// Decodes one message: `body` is a whole frame without its length prefix. Payload views in the
// result point into `body`. Every field is range-checked; the first problem found is returned.
Expected<Message, WireError> decode(ByteView body);

// For a receiver that reads large payloads straight to where they belong. The length of the
// header (everything before the payload) of a URB_SUBMIT, URB_COMPLETE or URB_DATA frame body
// that begins with `prefix`; nullopt for other messages, or when the prefix is too short to
// tell.
std::optional<std::size_t> urb_head_length(ByteView prefix);
// Decodes a URB_SUBMIT, URB_COMPLETE or URB_DATA frame whose body is `head` (as measured by
// urb_head_length) followed by `payload`, which lies elsewhere; the result's payload views
// `payload`. The same rules as decode().
Expected<Message, WireError> decode_split(ByteView head, ByteView payload);

// The field-range rules of the protocol (everything decode() checks beyond the frame's
// structure). decode() applies them to what it parsed; encode_frame() asserts them.
std::optional<WireError> check(const Message& message);

}  // namespace usbnet::wire
