#include "capture/usbmon.h"

#include <algorithm>
#include <cerrno>

namespace usbnet::capture {

namespace {

// usbmon's transfer types (the kernel's PIPE_* values), indexed by wire::UrbType.
std::uint8_t xfer_type(wire::UrbType type) {
  switch (type) {
    case wire::UrbType::Iso:
      return 0;
    case wire::UrbType::Interrupt:
      return 1;
    case wire::UrbType::Control:
      return 2;
    case wire::UrbType::Bulk:
      return 3;
  }
  return 3;
}

template <typename T>
void put(wire::Bytes& out, T value) {
  using U = std::make_unsigned_t<T>;
  const U v = static_cast<U>(value);
  for (std::size_t i = 0; i < sizeof(T); ++i)
    out.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}

// The kernel's transfer_flags for the URB usbfs would build from these libusb flags.
std::uint32_t urb_flags(const Urb& urb) {
  std::uint32_t flags = 0;
  if (urb.is_in()) {
    flags |= kUrbDirIn;
    if (urb.flags & wire::kFlagShortNotOk) flags |= kUrbShortNotOk;
  }
  if (urb.flags & wire::kFlagAddZeroPacket) flags |= kUrbZeroPacket;
  if (urb.type == wire::UrbType::Iso) flags |= kUrbIsoAsap;
  return flags;
}

struct Header {
  char kind = 'S';
  std::int32_t status = 0;
  std::uint32_t urb_length = 0;   // usbmon's "length": submitted or actual
  std::uint32_t data_length = 0;  // bytes of data that follow the iso descriptors
  char flag_setup = '-';
  char flag_data = 0;
  std::int32_t error_count = 0;
  std::uint32_t ndesc = 0;
};

// The pcap record header and the 64-byte usbmon header; `wire_length` is the length the record
// would have had uncut (libpcap's rule: header, descriptors and the URB's length).
void append_header(wire::Bytes& out, const Urb& urb, const Header& h, Timestamp ts,
                   std::uint32_t captured, std::uint32_t wire_length) {
  put<std::uint32_t>(out, static_cast<std::uint32_t>(ts.sec));
  put<std::uint32_t>(out, static_cast<std::uint32_t>(ts.usec));
  put<std::uint32_t>(out, captured);
  put<std::uint32_t>(out, std::max(captured, wire_length));

  put<std::uint64_t>(out, urb.id);
  out.push_back(static_cast<std::uint8_t>(h.kind));
  out.push_back(xfer_type(urb.type));
  out.push_back(static_cast<std::uint8_t>((urb.is_in() ? 0x80 : 0x00) | (urb.endpoint & 0x0f)));
  out.push_back(urb.address);
  put<std::uint16_t>(out, urb.bus);
  out.push_back(static_cast<std::uint8_t>(h.flag_setup));
  out.push_back(static_cast<std::uint8_t>(h.flag_data));
  put<std::int64_t>(out, ts.sec);
  put<std::int32_t>(out, ts.usec);
  put<std::int32_t>(out, h.status);
  put<std::uint32_t>(out, h.urb_length);
  put<std::uint32_t>(
      out, h.ndesc * static_cast<std::uint32_t>(kIsoDescriptorLength) + h.data_length);  // len_cap
  const bool bare = h.kind == 'E';  // mon_bin_error fills in no more than this
  if (urb.type == wire::UrbType::Control && h.kind == 'S') {
    out.insert(out.end(), urb.setup.begin(), urb.setup.end());
  } else if (urb.type == wire::UrbType::Iso && !bare) {
    put<std::int32_t>(out, h.error_count);
    put<std::int32_t>(out, static_cast<std::int32_t>(urb.iso_lengths.size()));
  } else {
    put<std::uint64_t>(out, 0);
  }
  const bool periodic = urb.type == wire::UrbType::Interrupt || urb.type == wire::UrbType::Iso;
  put<std::int32_t>(out, periodic && !bare ? urb.interval : 0);
  put<std::int32_t>(out, 0);  // start_frame: the agent's host controller chose it
  put<std::uint32_t>(out, bare ? 0 : urb_flags(urb));
  put<std::uint32_t>(out, h.ndesc);
}

// How many iso descriptors fit in a record, and how much data after them.
std::uint32_t descriptors_that_fit(const Urb& urb) {
  const std::size_t room = (kSnapLength - kUsbmonHeaderLength) / kIsoDescriptorLength;
  return static_cast<std::uint32_t>(std::min(urb.iso_lengths.size(), room));
}

std::uint32_t data_room(std::uint32_t ndesc) {
  return kSnapLength - static_cast<std::uint32_t>(kUsbmonHeaderLength) -
         ndesc * static_cast<std::uint32_t>(kIsoDescriptorLength);
}

// Offsets of the iso packets in the buffer: the sum of the requested lengths before each.
std::vector<std::uint32_t> iso_offsets(const Urb& urb) {
  std::vector<std::uint32_t> offsets;
  std::uint32_t offset = 0;
  for (std::uint32_t length : urb.iso_lengths) {
    offsets.push_back(offset);
    offset += length;
  }
  return offsets;
}

void append_record(wire::Bytes& out, const Urb& urb, Header h, Timestamp ts,
                   const std::vector<std::int32_t>& iso_status,
                   const std::vector<std::uint32_t>& iso_length, wire::ByteView data) {
  h.ndesc = descriptors_that_fit(urb);
  const std::uint32_t kept =
      std::min<std::uint32_t>(data_room(h.ndesc), static_cast<std::uint32_t>(data.size()));
  h.data_length = kept;
  const std::uint32_t descriptors = h.ndesc * static_cast<std::uint32_t>(kIsoDescriptorLength);
  const std::uint32_t captured =
      static_cast<std::uint32_t>(kUsbmonHeaderLength) + descriptors + kept;
  const std::uint32_t uncut = static_cast<std::uint32_t>(kUsbmonHeaderLength) + descriptors +
                              std::max(h.urb_length, static_cast<std::uint32_t>(data.size()));
  out.reserve(out.size() + kPcapRecordHeaderLength + captured);
  append_header(out, urb, h, ts, captured, uncut);
  const std::vector<std::uint32_t> offsets = iso_offsets(urb);
  for (std::uint32_t i = 0; i < h.ndesc; ++i) {
    put<std::int32_t>(out, iso_status[i]);
    put<std::uint32_t>(out, offsets[i]);
    put<std::uint32_t>(out, iso_length[i]);
    put<std::uint32_t>(out, 0);
  }
  out.insert(out.end(), data.begin(), data.begin() + kept);
}

}  // namespace

bool Urb::is_in() const {
  return type == wire::UrbType::Control ? (setup[0] & 0x80) != 0 : (endpoint & 0x80) != 0;
}

std::array<std::uint8_t, kPcapFileHeaderLength> pcap_file_header() {
  wire::Bytes h;
  put<std::uint32_t>(h, 0xa1b2c3d4);  // microsecond timestamps, written little-endian
  put<std::uint16_t>(h, 2);
  put<std::uint16_t>(h, 4);
  put<std::int32_t>(h, 0);   // thiszone
  put<std::uint32_t>(h, 0);  // sigfigs
  put<std::uint32_t>(h, kSnapLength);
  put<std::uint32_t>(h, kLinkTypeUsbLinuxMmapped);
  std::array<std::uint8_t, kPcapFileHeaderLength> out{};
  std::copy(h.begin(), h.end(), out.begin());
  return out;
}

void append_submission(wire::Bytes& out, const Urb& urb, wire::ByteView out_data, Timestamp ts) {
  Header h;
  h.kind = 'S';
  h.status = kEinprogress;
  h.urb_length = urb.length;
  if (urb.type == wire::UrbType::Control) h.flag_setup = 0;  // the setup packet is present
  wire::ByteView data;
  if (urb.is_in()) {
    h.flag_data = '<';  // the data will come with the completion
  } else {
    data = out_data.first(std::min<std::size_t>(out_data.size(), urb.length));
  }
  // An iso packet is "not done yet" until its completion (usb_submit_urb sets -EXDEV).
  std::vector<std::int32_t> status(urb.iso_lengths.size(), kExdev);
  append_record(out, urb, h, ts, status, urb.iso_lengths, data);
}

void append_completion(wire::Bytes& out, const Urb& urb, const Outcome& outcome,
                       wire::ByteView in_buffer, Timestamp ts) {
  Header h;
  h.kind = 'C';
  h.status = errno_status(outcome.status);
  std::vector<std::int32_t> status;
  std::vector<std::uint32_t> lengths;
  wire::ByteView data;
  if (urb.type == wire::UrbType::Iso) {
    // The URB's actual length is the sum of the packets'; IN data is kept up to the end of the
    // last packet that has any, at the packets' offsets (mon_bin_collate_isodesc).
    const std::vector<std::uint32_t> offsets = iso_offsets(urb);
    std::uint32_t actual = 0;
    std::uint32_t end = 0;
    for (std::size_t i = 0; i < urb.iso_lengths.size(); ++i) {
      const wire::IsoPacketResult r =
          i < outcome.iso.size() ? outcome.iso[i] : wire::IsoPacketResult{outcome.status, 0};
      const std::uint32_t length = std::min(r.actual_length, urb.iso_lengths[i]);
      status.push_back(errno_status(r.status));
      lengths.push_back(length);
      if (r.status != wire::UrbStatus::Completed) ++h.error_count;
      actual += length;
      if (length != 0) end = std::max(end, offsets[i] + length);
    }
    h.urb_length = actual;
    if (urb.is_in()) data = in_buffer.first(std::min<std::size_t>(in_buffer.size(), end));
  } else {
    h.urb_length = std::min(outcome.actual_length, urb.length);
    if (urb.is_in()) {
      data = in_buffer.first(std::min<std::size_t>(in_buffer.size(), h.urb_length));
    }
  }
  if (!urb.is_in()) h.flag_data = '>';  // the data went with the submission
  append_record(out, urb, h, ts, status, lengths, data);
}

void append_submission_error(wire::Bytes& out, const Urb& urb, std::int32_t error, Timestamp ts) {
  Header h;
  h.kind = 'E';
  h.status = error;
  h.flag_data = 'E';
  // mon_bin_error: the bare header, no descriptors and no data.
  append_header(out, urb, h, ts, static_cast<std::uint32_t>(kUsbmonHeaderLength),
                static_cast<std::uint32_t>(kUsbmonHeaderLength));
}

void append_enumeration(wire::Bytes& out, const wire::DeviceInfo& device, std::uint16_t bus,
                        std::uint64_t first_id, Timestamp ts) {
  auto read = [&](std::uint8_t type, std::uint8_t index, wire::ByteView descriptor) {
    Urb urb;
    urb.id = first_id++;
    urb.bus = bus;
    urb.address = device.device_address;
    urb.type = wire::UrbType::Control;
    const auto length =
        static_cast<std::uint16_t>(std::min<std::size_t>(descriptor.size(), 0xffff));
    urb.setup = {0x80,
                 0x06,
                 index,
                 type,
                 0x00,
                 0x00,
                 static_cast<std::uint8_t>(length & 0xff),
                 static_cast<std::uint8_t>(length >> 8)};
    urb.length = length;
    append_submission(out, urb, {}, ts);
    append_completion(out, urb, Outcome{wire::UrbStatus::Completed, length, {}},
                      descriptor.first(length), ts);
  };
  read(0x01, 0, device.device_descriptor);
  for (std::size_t i = 0; i < device.configs.size() && i < 0xff; ++i) {
    read(0x02, static_cast<std::uint8_t>(i), device.configs[i]);
  }
}

std::int32_t errno_status(wire::UrbStatus status) {
  switch (status) {
    case wire::UrbStatus::Completed:
      return 0;
    case wire::UrbStatus::Error:
      return -EPROTO;
    case wire::UrbStatus::TimedOut:
      return -ETIMEDOUT;
    case wire::UrbStatus::Cancelled:
      return -ECONNRESET;  // what usbfs's discard (usb_unlink_urb) leaves
    case wire::UrbStatus::Stall:
      return -EPIPE;
    case wire::UrbStatus::NoDevice:
      return -ENODEV;
    case wire::UrbStatus::Overflow:
      return -EOVERFLOW;
  }
  return -EPROTO;
}

std::int32_t interval(const wire::DeviceInfo& device, std::uint8_t endpoint, wire::UrbType type) {
  if (type != wire::UrbType::Interrupt && type != wire::UrbType::Iso) return 0;
  // The active configuration (or the first one), then its first endpoint descriptor with this
  // address.
  const wire::Bytes* config = nullptr;
  for (const wire::Bytes& c : device.configs) {
    if (c.size() >= 9 && c[5] == device.active_config) config = &c;
  }
  if (!config && !device.configs.empty()) config = &device.configs.front();
  if (!config) return 0;
  std::size_t at = 0;
  while (at + 2 <= config->size()) {
    const std::uint8_t length = (*config)[at];
    if (length < 2 || at + length > config->size()) break;
    if ((*config)[at + 1] == 0x05 && length >= 7 && (*config)[at + 2] == endpoint) {
      const int b_interval = (*config)[at + 6];
      if (device.speed >= 3) return 1 << std::clamp(b_interval - 1, 0, 15);  // high speed on
      return b_interval;
    }
    at += length;
  }
  return 0;
}

}  // namespace usbnet::capture
