// Decoding of one frame body into a message. Structure first (magic, type, reserved fields,
// every declared length against the bytes present), then the field-range rules of check().
// Nothing is allocated for a declared count or length before the bytes it covers are known to
// be present, so a frame never costs more memory than its own size.
#include "byte_io.h"
#include "usbnet/messages.h"

namespace usbnet::wire {

namespace {

using detail::ByteReader;

template <typename T>
using Parsed = Expected<T, WireError>;

Unexpected<WireError> fail(WireError e) { return Unexpected<WireError>{e}; }

Parsed<DeviceInfo> parse_device(ByteReader& r) {
  auto h = r.take<DeviceRecordHeader>();
  if (!h) return fail(WireError::Truncated);
  if (h->reserved != 0) return fail(WireError::ReservedNotZero);
  if (h->port_count > kMaxPortNumbers) return fail(WireError::TooManyPorts);
  DeviceInfo d;
  d.device_id = h->device_id.get();
  d.parent_id = h->parent_id.get();
  d.bus_number = h->bus_number;
  d.device_address = h->device_address;
  d.speed = h->speed;
  d.active_config = h->active_config;
  d.port_numbers.assign(h->port_numbers, h->port_numbers + h->port_count);
  for (std::size_t i = h->port_count; i < kMaxPortNumbers; ++i) {
    if (h->port_numbers[i] != 0) return fail(WireError::ReservedNotZero);
  }
  std::copy(std::begin(h->device_descriptor), std::end(h->device_descriptor),
            d.device_descriptor.begin());
  for (unsigned i = 0; i < h->num_configs; ++i) {
    auto length = r.take<le16>();
    if (!length) return fail(WireError::Truncated);
    auto config = r.take_bytes(length->get());
    if (!config) return fail(WireError::Truncated);
    d.configs.emplace_back(config->begin(), config->end());
  }
  auto bos = r.take_bytes(h->bos_length.get());
  if (!bos) return fail(WireError::Truncated);
  d.bos.assign(bos->begin(), bos->end());
  const unsigned string_count = h->string_count.get();
  if (string_count > kMaxStringsPerDevice) return fail(WireError::TooManyStrings);
  for (unsigned i = 0; i < string_count; ++i) {
    auto sh = r.take<StringHeader>();
    if (!sh) return fail(WireError::Truncated);
    auto bytes = r.take_bytes(sh->length);
    if (!bytes) return fail(WireError::Truncated);
    d.strings.push_back({sh->index, sh->langid.get(), Bytes(bytes->begin(), bytes->end())});
  }
  return d;
}

Parsed<Message> parse_hello(ByteReader& r, std::uint32_t id) {
  // The version comes first and is judged first: a newer peer's HELLO may be laid out
  // differently, and it deserves "unsupported version" rather than a length error.
  ByteReader peek = r;
  auto version = peek.take<le16>();
  if (!version) return fail(WireError::Truncated);
  if (version->get() != kProtocolVersion) return fail(WireError::UnsupportedVersion);
  auto b = r.take<HelloBody>();
  if (!b) return fail(WireError::Truncated);
  if (b->reserved.get() != 0) return fail(WireError::ReservedNotZero);
  if (b->auth_length.get() > kMaxAuthLength) return fail(WireError::AuthTooLong);
  auto auth = r.take_bytes(b->auth_length.get());
  if (!auth) return fail(WireError::Truncated);
  auto name = r.take_bytes(b->name_length);
  if (!name) return fail(WireError::Truncated);
  Hello h;
  h.id = id;
  h.version = b->version.get();
  h.capabilities = b->capabilities.get();
  h.heartbeat_ms = b->heartbeat_ms.get();
  h.auth_method = static_cast<AuthMethod>(b->auth_method);
  h.auth.assign(auth->begin(), auth->end());
  h.name.assign(name->begin(), name->end());
  return Message{std::move(h)};
}

Parsed<Message> parse_error(ByteReader& r, std::uint32_t id) {
  auto b = r.take<ErrorBody>();
  if (!b) return fail(WireError::Truncated);
  if (b->text_length.get() > kMaxTextLength) return fail(WireError::TextTooLong);
  auto text = r.take_bytes(b->text_length.get());
  if (!text) return fail(WireError::Truncated);
  return Message{Error{id, b->code.get(), std::string(text->begin(), text->end())}};
}

Parsed<Message> parse_device_list(ByteReader& r, std::uint32_t id) {
  auto b = r.take<DeviceListBody>();
  if (!b) return fail(WireError::Truncated);
  const std::uint32_t count = b->count.get();
  if (count > kMaxDevicesPerList) return fail(WireError::TooManyDevices);
  DeviceList list{id, {}};
  for (std::uint32_t i = 0; i < count; ++i) {
    auto d = parse_device(r);
    if (!d) return fail(d.error());
    list.devices.push_back(std::move(*d));
  }
  return Message{std::move(list)};
}

Parsed<Message> parse_submit(ByteReader& r, std::uint32_t trans_id) {
  auto b = r.take<UrbSubmitBody>();
  if (!b) return fail(WireError::Truncated);
  if (b->reserved.get() != 0) return fail(WireError::ReservedNotZero);
  if (b->urb_type > static_cast<std::uint8_t>(UrbType::Iso)) return fail(WireError::BadUrbType);
  const auto type = static_cast<UrbType>(b->urb_type);
  if (b->setup_len.get() != (type == UrbType::Control ? kSetupLength : 0)) {
    return fail(WireError::BadSetupLength);
  }
  const unsigned packets = b->iso_packets.get();
  if (packets > kMaxIsoPackets) return fail(WireError::BadIsoPackets);
  UrbSubmit u;
  u.trans_id = trans_id;
  u.type = type;
  u.endpoint = b->endpoint;
  u.flags = b->flags.get();
  std::copy(std::begin(b->setup), std::end(b->setup), u.setup.begin());
  u.data_len = b->data_len.get();
  u.handle = b->handle.get();
  u.timeout_ms = b->timeout_ms.get();
  if (r.remaining() < packets * sizeof(le32)) return fail(WireError::Truncated);
  u.iso_lengths.reserve(packets);
  for (unsigned i = 0; i < packets; ++i) u.iso_lengths.push_back(r.take<le32>()->get());
  u.payload = r.take_rest();
  return Message{std::move(u)};
}

Parsed<Message> parse_complete(ByteReader& r, std::uint32_t trans_id) {
  auto b = r.take<UrbCompleteBody>();
  if (!b) return fail(WireError::Truncated);
  if (b->reserved.get() != 0) return fail(WireError::ReservedNotZero);
  const unsigned packets = b->iso_packets.get();
  if (packets > kMaxIsoPackets) return fail(WireError::BadIsoPackets);
  UrbComplete c;
  c.trans_id = trans_id;
  c.status = static_cast<UrbStatus>(b->status.get());
  c.actual_length = b->actual_length.get();
  c.data_len = b->data_len.get();
  if (r.remaining() < packets * sizeof(IsoResult)) return fail(WireError::Truncated);
  c.iso.reserve(packets);
  for (unsigned i = 0; i < packets; ++i) {
    const IsoResult p = *r.take<IsoResult>();
    c.iso.push_back({static_cast<UrbStatus>(p.status.get()), p.actual_length.get()});
  }
  c.payload = r.take_rest();
  return Message{std::move(c)};
}

Parsed<Message> parse_body(MessageType type, std::uint32_t id, ByteReader& r) {
  // Fixed-size bodies: a missing byte is Truncated; extra bytes are caught by the caller.
  auto fixed = [&r]<typename Layout, typename Build>(Build build) -> Parsed<Message> {
    auto b = r.take<Layout>();
    if (!b) return fail(WireError::Truncated);
    return Message{build(*b)};
  };
  switch (type) {
    case MessageType::Hello:
      return parse_hello(r, id);
    case MessageType::Error:
      return parse_error(r, id);
    case MessageType::Reply:
      return fixed.operator()<ReplyBody>([id](const ReplyBody& b) {
        return Reply{id, b.value.get()};
      });
    case MessageType::ListDevices:
      return Message{ListDevices{id}};
    case MessageType::DeviceList:
      return parse_device_list(r, id);
    case MessageType::DeviceArrived: {
      if (id != 0) return fail(WireError::ReservedNotZero);
      auto d = parse_device(r);
      if (!d) return fail(d.error());
      return Message{DeviceArrived{std::move(*d)}};
    }
    case MessageType::DeviceLeft:
      if (id != 0) return fail(WireError::ReservedNotZero);
      return fixed.operator()<DeviceIdBody>(
          [](const DeviceIdBody& b) { return DeviceLeft{b.device_id.get()}; });
    case MessageType::Open:
      return fixed.operator()<DeviceIdBody>([id](const DeviceIdBody& b) {
        return Open{id, b.device_id.get()};
      });
    case MessageType::Close:
      return fixed.operator()<HandleBody>([id](const HandleBody& b) {
        return Close{id, b.handle.get()};
      });
    case MessageType::GetConfiguration:
      return fixed.operator()<HandleBody>([id](const HandleBody& b) {
        return GetConfiguration{id, b.handle.get()};
      });
    case MessageType::ResetDevice:
      return fixed.operator()<HandleBody>([id](const HandleBody& b) {
        return ResetDevice{id, b.handle.get()};
      });
    case MessageType::SetConfiguration:
      return fixed.operator()<SetConfigurationBody>([id](const SetConfigurationBody& b) {
        return SetConfiguration{id, b.handle.get(), b.configuration.get()};
      });
    case MessageType::ClaimInterface:
      return fixed.operator()<InterfaceBody>([id](const InterfaceBody& b) {
        return ClaimInterface{id, b.handle.get(), b.interface_number};
      });
    case MessageType::ReleaseInterface:
      return fixed.operator()<InterfaceBody>([id](const InterfaceBody& b) {
        return ReleaseInterface{id, b.handle.get(), b.interface_number};
      });
    case MessageType::SetAltSetting:
      return fixed.operator()<SetAltSettingBody>([id](const SetAltSettingBody& b) {
        return SetAltSetting{id, b.handle.get(), b.interface_number, b.alt_setting};
      });
    case MessageType::ClearHalt:
      return fixed.operator()<ClearHaltBody>([id](const ClearHaltBody& b) {
        return ClearHalt{id, b.handle.get(), b.endpoint};
      });
    case MessageType::KernelDriver:
      return fixed.operator()<KernelDriverBody>([id](const KernelDriverBody& b) {
        return KernelDriver{id, b.handle.get(), static_cast<KernelDriverOp>(b.op),
                            b.interface_number};
      });
    case MessageType::UrbSubmit:
      return parse_submit(r, id);
    case MessageType::UrbComplete:
      return parse_complete(r, id);
    case MessageType::UrbData:
      return fixed.operator()<UrbDataBody>([id, &r](const UrbDataBody& b) {
        return UrbData{id, b.offset.get(), r.take_rest()};
      });
    case MessageType::UrbCancel:
      return Message{UrbCancel{id}};
  }
  return fail(WireError::UnknownType);
}

}  // namespace

namespace {

// The frame's structure, without the field-range rules.
Expected<Message, WireError> parse(ByteView body) {
  ByteReader r(body);
  // The magic is judged before the length so that garbage reads as "bad magic".
  auto magic = r.take<le32>();
  if (!magic) return fail(WireError::Truncated);
  if (magic->get() != kMagic) return fail(WireError::BadMagic);
  auto type = r.take<le16>();
  auto reserved = r.take<le16>();
  auto id = r.take<le32>();
  if (!id) return fail(WireError::Truncated);
  if (!is_known_message_type(type->get())) return fail(WireError::UnknownType);
  if (reserved->get() != 0) return fail(WireError::ReservedNotZero);

  auto message = parse_body(static_cast<MessageType>(type->get()), id->get(), r);
  if (!message) return message;
  if (r.remaining() != 0) return fail(WireError::LengthMismatch);
  return message;
}

}  // namespace

Expected<Message, WireError> decode(ByteView body) {
  auto message = parse(body);
  if (!message) return message;
  if (auto error = check(*message)) return fail(*error);
  return message;
}

std::optional<std::size_t> urb_head_length(ByteView prefix) {
  ByteReader r(prefix);
  auto header = r.take<MessageHeader>();
  if (!header) return std::nullopt;
  constexpr std::size_t kHeader = sizeof(MessageHeader);
  switch (static_cast<MessageType>(header->type.get())) {
    case MessageType::UrbSubmit: {
      auto b = r.take<UrbSubmitBody>();
      if (!b) return std::nullopt;
      return kHeader + sizeof(UrbSubmitBody) + std::size_t{b->iso_packets.get()} * sizeof(le32);
    }
    case MessageType::UrbComplete: {
      auto b = r.take<UrbCompleteBody>();
      if (!b) return std::nullopt;
      return kHeader + sizeof(UrbCompleteBody) +
             std::size_t{b->iso_packets.get()} * sizeof(IsoResult);
    }
    case MessageType::UrbData:
      return kHeader + sizeof(UrbDataBody);
    default:
      return std::nullopt;
  }
}

Expected<Message, WireError> decode_split(ByteView head, ByteView payload) {
  auto message = parse(head);
  if (!message) return message;
  bool placed = false;
  std::visit(
      [&](auto& m) {
        if constexpr (requires { m.payload; }) {
          placed = m.payload.empty();  // the head must end where the payload begins
          m.payload = payload;
        }
      },
      *message);
  if (!placed) return fail(WireError::LengthMismatch);
  if (auto error = check(*message)) return fail(*error);
  return message;
}

}  // namespace usbnet::wire
