// The field-range rules of the protocol, shared by the decoder and the encoder.
#include <algorithm>
#include <numeric>

#include "usbnet/messages.h"

namespace usbnet::wire {

namespace {

std::optional<WireError> check_device(const DeviceInfo& d) {
  if (d.port_numbers.size() > kMaxPortNumbers) return WireError::TooManyPorts;
  if (d.speed > kMaxSpeed) return WireError::BadSpeed;
  if (d.strings.size() > kMaxStringsPerDevice) return WireError::TooManyStrings;
  if (d.configs.size() > 255 || d.bos.size() > 0xffff) return WireError::FieldTooLong;
  for (const Bytes& config : d.configs) {
    if (config.size() > 0xffff) return WireError::FieldTooLong;
  }
  for (const StringDescriptor& s : d.strings) {
    if (s.descriptor.size() > 255) return WireError::FieldTooLong;
  }
  return std::nullopt;
}

std::uint8_t setup_request_type(const UrbSubmit& u) { return u.setup[0]; }
std::uint16_t setup_length(const UrbSubmit& u) {
  return static_cast<std::uint16_t>(u.setup[6] | (u.setup[7] << 8));
}

std::optional<WireError> check_submit(const UrbSubmit& u) {
  if (static_cast<std::uint8_t>(u.type) > static_cast<std::uint8_t>(UrbType::Iso)) {
    return WireError::BadUrbType;
  }
  const bool control = u.type == UrbType::Control;
  if ((u.endpoint & 0x70) != 0 || (!control && (u.endpoint & 0x0f) == 0)) {
    return WireError::BadEndpoint;
  }
  if ((u.flags & ~kKnownTransferFlags) != 0) return WireError::BadFlags;
  if (u.data_len > kMaxTransferLength) return WireError::TransferTooLarge;
  if (control) {
    if (setup_length(u) != u.data_len) return WireError::SetupMismatch;
  } else if (std::any_of(u.setup.begin(), u.setup.end(), [](std::uint8_t b) { return b != 0; })) {
    return WireError::SetupMismatch;
  }
  const bool iso = u.type == UrbType::Iso;
  if (iso != !u.iso_lengths.empty() || u.iso_lengths.size() > kMaxIsoPackets) {
    return WireError::BadIsoPackets;
  }
  if (iso) {
    const std::uint64_t sum =
        std::accumulate(u.iso_lengths.begin(), u.iso_lengths.end(), std::uint64_t{0});
    if (sum != u.data_len) return WireError::IsoLengthMismatch;
  }
  if (u.payload.size() > u.data_len) return WireError::PayloadTooLarge;
  if (u.is_in() && !u.payload.empty()) return WireError::UnexpectedPayload;
  return std::nullopt;
}

std::optional<WireError> check_complete(const UrbComplete& c) {
  if (static_cast<std::uint32_t>(c.status) > kMaxUrbStatus) return WireError::BadStatus;
  if (c.iso.size() > kMaxIsoPackets) return WireError::BadIsoPackets;
  if (c.data_len > kMaxTransferLength) return WireError::TransferTooLarge;
  std::uint64_t iso_sum = 0;
  for (const IsoPacketResult& p : c.iso) {
    if (static_cast<std::uint32_t>(p.status) > kMaxUrbStatus) return WireError::BadStatus;
    iso_sum += p.actual_length;
  }
  // IN completions carry their bytes, OUT ones none (the direction is the URB's, not known here).
  if (c.data_len != 0 && c.data_len != (c.iso.empty() ? c.actual_length : iso_sum)) {
    return WireError::BadDataLength;
  }
  if (c.payload.size() > c.data_len) return WireError::PayloadTooLarge;
  return std::nullopt;
}

struct Checker {
  std::optional<WireError> operator()(const Hello& h) const {
    if (h.version != kProtocolVersion) return WireError::UnsupportedVersion;
    if ((h.capabilities & ~kKnownCapabilities) != 0) return WireError::UnknownCapability;
    if (static_cast<std::uint8_t>(h.auth_method) > kMaxAuthMethod) return WireError::BadAuthMethod;
    if (h.auth.size() > kMaxAuthLength) return WireError::AuthTooLong;
    if (h.name.size() > 255) return WireError::FieldTooLong;
    return std::nullopt;
  }
  std::optional<WireError> operator()(const Error& e) const {
    if (!is_known_error_code(e.code)) return WireError::BadErrorCode;
    if (e.text.size() > kMaxTextLength) return WireError::TextTooLong;
    return std::nullopt;
  }
  std::optional<WireError> operator()(const DeviceList& l) const {
    if (l.devices.size() > kMaxDevicesPerList) return WireError::TooManyDevices;
    for (const DeviceInfo& d : l.devices) {
      if (auto e = check_device(d)) return e;
    }
    return std::nullopt;
  }
  std::optional<WireError> operator()(const DeviceArrived& a) const {
    return check_device(a.device);
  }
  std::optional<WireError> operator()(const SetConfiguration& s) const {
    if (s.configuration < -1 || s.configuration > 255) return WireError::BadConfiguration;
    return std::nullopt;
  }
  std::optional<WireError> operator()(const KernelDriver& k) const {
    if (static_cast<std::uint8_t>(k.op) > kMaxKernelDriverOp) return WireError::BadKernelDriverOp;
    return std::nullopt;
  }
  std::optional<WireError> operator()(const UrbSubmit& u) const { return check_submit(u); }
  std::optional<WireError> operator()(const UrbComplete& c) const { return check_complete(c); }
  // Every other message has no field with a restricted range.
  template <typename Other>
  std::optional<WireError> operator()(const Other&) const {
    return std::nullopt;
  }
};

}  // namespace

std::optional<WireError> check(const Message& message) { return std::visit(Checker{}, message); }

bool UrbSubmit::is_in() const {
  return type == UrbType::Control ? (setup_request_type(*this) & 0x80) != 0
                                  : (endpoint & 0x80) != 0;
}

namespace {
bool same_bytes(ByteView a, ByteView b) { return std::ranges::equal(a, b); }
}  // namespace

bool operator==(const UrbSubmit& a, const UrbSubmit& b) {
  return a.trans_id == b.trans_id && a.type == b.type && a.endpoint == b.endpoint &&
         a.flags == b.flags && a.setup == b.setup && a.data_len == b.data_len &&
         a.handle == b.handle && a.timeout_ms == b.timeout_ms && a.iso_lengths == b.iso_lengths &&
         same_bytes(a.payload, b.payload);
}
bool operator==(const UrbComplete& a, const UrbComplete& b) {
  return a.trans_id == b.trans_id && a.status == b.status && a.actual_length == b.actual_length &&
         a.data_len == b.data_len && a.iso == b.iso && same_bytes(a.payload, b.payload);
}
bool operator==(const UrbData& a, const UrbData& b) {
  return a.trans_id == b.trans_id && a.offset == b.offset && same_bytes(a.payload, b.payload);
}

MessageType type_of(const Message& message) {
  static constexpr MessageType kTypes[] = {
      MessageType::Hello,
      MessageType::Error,
      MessageType::Reply,
      MessageType::ListDevices,
      MessageType::DeviceList,
      MessageType::DeviceArrived,
      MessageType::DeviceLeft,
      MessageType::Open,
      MessageType::Close,
      MessageType::SetConfiguration,
      MessageType::GetConfiguration,
      MessageType::ClaimInterface,
      MessageType::ReleaseInterface,
      MessageType::SetAltSetting,
      MessageType::ClearHalt,
      MessageType::ResetDevice,
      MessageType::KernelDriver,
      MessageType::UrbSubmit,
      MessageType::UrbComplete,
      MessageType::UrbData,
      MessageType::UrbCancel,
  };
  static_assert(std::size(kTypes) == std::variant_size_v<Message>);
  return kTypes[message.index()];
}

std::uint32_t id_of(const Message& message) {
  return std::visit(
      [](const auto& m) -> std::uint32_t {
        using M = std::decay_t<decltype(m)>;
        if constexpr (requires { m.trans_id; }) {
          return m.trans_id;
        } else if constexpr (requires { m.id; }) {
          return m.id;
        } else {
          static_assert(std::is_same_v<M, DeviceArrived> || std::is_same_v<M, DeviceLeft>);
          return 0;
        }
      },
      message);
}

}  // namespace usbnet::wire
