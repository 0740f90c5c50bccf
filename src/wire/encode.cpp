// Encoding of messages into frames (docs/PROTOCOL.md gives every layout).
#include <algorithm>
#include <cassert>
#include <cstring>

#include "byte_io.h"
#include "usbnet/frame_head.h"
#include "usbnet/messages.h"

namespace usbnet::wire {

using detail::append;
using detail::append_bytes;
using detail::make_le16;
using detail::make_le32;
using detail::make_sle32;

namespace {

template <typename Out>
void append_device(Out& out, const DeviceInfo& d) {
  DeviceRecordHeader h{};
  h.device_id = make_le32(d.device_id);
  h.parent_id = make_le32(d.parent_id);
  h.bus_number = d.bus_number;
  h.device_address = d.device_address;
  h.speed = d.speed;
  h.active_config = d.active_config;
  h.port_count = static_cast<std::uint8_t>(d.port_numbers.size());
  std::copy(d.port_numbers.begin(), d.port_numbers.end(), h.port_numbers);
  std::copy(d.device_descriptor.begin(), d.device_descriptor.end(), h.device_descriptor);
  h.num_configs = static_cast<std::uint8_t>(d.configs.size());
  h.bos_length = make_le16(static_cast<std::uint16_t>(d.bos.size()));
  h.string_count = make_le16(static_cast<std::uint16_t>(d.strings.size()));
  append(out, h);
  for (const Bytes& config : d.configs) {
    append(out, make_le16(static_cast<std::uint16_t>(config.size())));
    append_bytes(out, config);
  }
  append_bytes(out, d.bos);
  for (const StringDescriptor& s : d.strings) {
    StringHeader sh{};
    sh.index = s.index;
    sh.langid = make_le16(s.langid);
    sh.length = static_cast<std::uint8_t>(s.descriptor.size());
    append(out, sh);
    append_bytes(out, s.descriptor);
  }
}

// Appends the body of each message to `out` and returns the payload view (if any).
template <typename Out>
struct BodyEncoder {
  Out& out;

  ByteView operator()(const Hello& m) const {
    HelloBody b{};
    b.version = make_le16(m.version);
    b.capabilities = make_le32(m.capabilities);
    b.heartbeat_ms = make_le32(m.heartbeat_ms);
    b.auth_method = static_cast<std::uint8_t>(m.auth_method);
    b.name_length = static_cast<std::uint8_t>(m.name.size());
    b.auth_length = make_le16(static_cast<std::uint16_t>(m.auth.size()));
    append(out, b);
    append_bytes(out, m.auth);
    out.insert(out.end(), m.name.begin(), m.name.end());
    return {};
  }
  ByteView operator()(const Error& m) const {
    ErrorBody b{};
    b.code = make_sle32(m.code);
    b.text_length = make_le16(static_cast<std::uint16_t>(m.text.size()));
    append(out, b);
    out.insert(out.end(), m.text.begin(), m.text.end());
    return {};
  }
  ByteView operator()(const Reply& m) const {
    append(out, ReplyBody{make_le32(m.value)});
    return {};
  }
  ByteView operator()(const ListDevices&) const { return {}; }
  ByteView operator()(const DeviceList& m) const {
    append(out, DeviceListBody{make_le32(static_cast<std::uint32_t>(m.devices.size()))});
    for (const DeviceInfo& d : m.devices) append_device(out, d);
    return {};
  }
  ByteView operator()(const DeviceArrived& m) const {
    append_device(out, m.device);
    return {};
  }
  ByteView operator()(const DeviceLeft& m) const {
    append(out, DeviceIdBody{make_le32(m.device_id)});
    return {};
  }
  ByteView operator()(const Open& m) const {
    append(out, DeviceIdBody{make_le32(m.device_id)});
    return {};
  }
  ByteView operator()(const Close& m) const { return handle_only(m.handle); }
  ByteView operator()(const GetConfiguration& m) const { return handle_only(m.handle); }
  ByteView operator()(const ResetDevice& m) const { return handle_only(m.handle); }
  ByteView operator()(const SetConfiguration& m) const {
    append(out, SetConfigurationBody{make_le32(m.handle), make_sle32(m.configuration)});
    return {};
  }
  ByteView operator()(const ClaimInterface& m) const {
    append(out, InterfaceBody{make_le32(m.handle), m.interface_number});
    return {};
  }
  ByteView operator()(const ReleaseInterface& m) const {
    append(out, InterfaceBody{make_le32(m.handle), m.interface_number});
    return {};
  }
  ByteView operator()(const SetAltSetting& m) const {
    append(out, SetAltSettingBody{make_le32(m.handle), m.interface_number, m.alt_setting});
    return {};
  }
  ByteView operator()(const ClearHalt& m) const {
    append(out, ClearHaltBody{make_le32(m.handle), m.endpoint});
    return {};
  }
  ByteView operator()(const KernelDriver& m) const {
    append(out, KernelDriverBody{make_le32(m.handle), static_cast<std::uint8_t>(m.op),
                                 m.interface_number});
    return {};
  }
  ByteView operator()(const UrbSubmit& m) const {
    UrbSubmitBody b{};
    b.urb_type = static_cast<std::uint8_t>(m.type);
    b.endpoint = m.endpoint;
    b.flags = make_le32(m.flags);
    b.setup_len = make_le16(m.type == UrbType::Control ? kSetupLength : 0);
    b.data_len = make_le32(m.data_len);
    std::copy(m.setup.begin(), m.setup.end(), b.setup);
    b.handle = make_le32(m.handle);
    b.timeout_ms = make_le32(m.timeout_ms);
    b.iso_packets = make_le16(static_cast<std::uint16_t>(m.iso_lengths.size()));
    append(out, b);
    for (std::uint32_t length : m.iso_lengths) append(out, make_le32(length));
    return m.payload;
  }
  ByteView operator()(const UrbComplete& m) const {
    UrbCompleteBody b{};
    b.status = make_le32(static_cast<std::uint32_t>(m.status));
    b.actual_length = make_le32(m.actual_length);
    b.data_len = make_le32(m.data_len);
    b.iso_packets = make_le16(static_cast<std::uint16_t>(m.iso.size()));
    append(out, b);
    for (const IsoPacketResult& p : m.iso) {
      append(out, IsoResult{make_le32(static_cast<std::uint32_t>(p.status)),
                            make_le32(p.actual_length)});
    }
    return m.payload;
  }
  ByteView operator()(const UrbData& m) const {
    append(out, UrbDataBody{make_le32(m.offset)});
    return m.payload;
  }
  ByteView operator()(const UrbCancel&) const { return {}; }

  ByteView handle_only(std::uint32_t handle) const {
    append(out, HandleBody{make_le32(handle)});
    return {};
  }
};

}  // namespace

namespace {

// The length prefix, the message header and the body up to the payload, into `head`; returns
// the payload view.
template <typename Out>
ByteView encode_into(const Message& message, Out& head) {
  assert(!check(message) && "encoding a message that breaks the protocol's rules");
  head.clear();
  head.resize(kFrameLengthSize);  // the length, filled in below
  MessageHeader header{};
  header.magic = make_le32(kMagic);
  header.type = make_le16(static_cast<std::uint16_t>(type_of(message)));
  header.id = make_le32(id_of(message));
  append(head, header);
  const ByteView payload = std::visit(BodyEncoder<Out>{head}, message);
  const auto length = static_cast<std::uint32_t>(head.size() + payload.size() - kFrameLengthSize);
  assert(length <= kMaxFrameLength && "a frame over the cap: send the payload in pieces");
  const le32 prefix = make_le32(length);
  std::memcpy(head.data(), prefix.bytes, kFrameLengthSize);
  return payload;
}

}  // namespace

EncodedFrame encode_frame(const Message& message) {
  EncodedFrame frame;
  frame.head.reserve(kFrameLengthSize + sizeof(MessageHeader) + sizeof(UrbSubmitBody));
  frame.payload = encode_into(message, frame.head);
  return frame;
}

ByteView encode_frame_head(const Message& message, FrameHead& head) {
  return encode_into(message, head);
}

Bytes encode(const Message& message) {
  EncodedFrame frame = encode_frame(message);
  Bytes bytes = std::move(frame.head);
  append_bytes(bytes, frame.payload);
  return bytes;
}

std::array<std::uint8_t, kFrameLengthSize> heartbeat_frame() { return {0, 0, 0, 0}; }

}  // namespace usbnet::wire
