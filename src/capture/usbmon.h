// Linux usbmon records (the "mmapped" binary API's 64-byte header, pcap link type
// LINKTYPE_USB_LINUX_MMAPPED = 220) for the URBs usbnet carries, so that Wireshark's own USB
// dissectors (descriptors, HID, mass storage, audio, ...) read them as a capture of the bus.
//
// Each record is what the kernel's usbmon would report for the same URB submitted through
// usbfs (drivers/usb/mon/mon_bin.c and Documentation/usb/usbmon.rst): 'S' at submission with the
// OUT data, 'C' at completion with the IN data, 'E' for a submission that never reached the
// device. Pure code: no file, no socket, no libusb.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "usbnet/messages.h"
#include "usbnet/protocol.h"

namespace usbnet::capture {

inline constexpr std::uint32_t kLinkTypeUsbLinuxMmapped = 220;
inline constexpr std::size_t kPcapFileHeaderLength = 24;
inline constexpr std::size_t kPcapRecordHeaderLength = 16;
inline constexpr std::size_t kUsbmonHeaderLength = 64;
inline constexpr std::size_t kIsoDescriptorLength = 16;
// The file's snapshot length: no record is longer (longer data is cut, as usbmon cuts it, and
// len_cap says how much was kept).
inline constexpr std::uint32_t kSnapLength = 262144;

// Kernel values that appear in the records.
inline constexpr std::int32_t kEinprogress = -115;  // status of every 'S' record
inline constexpr std::int32_t kExdev = -18;         // status of an iso packet not yet done
inline constexpr std::uint32_t kUrbShortNotOk = 0x0001;
inline constexpr std::uint32_t kUrbIsoAsap = 0x0002;
inline constexpr std::uint32_t kUrbZeroPacket = 0x0040;
inline constexpr std::uint32_t kUrbDirIn = 0x0200;

struct Timestamp {
  std::int64_t sec = 0;
  std::int32_t usec = 0;
};

// One URB as usbmon describes it.
struct Urb {
  std::uint64_t id =
      0;  // pairs a submission with its completion (the kernel uses the URB's address)
  std::uint16_t bus = 0;
  std::uint8_t address = 0;
  wire::UrbType type = wire::UrbType::Bulk;
  std::uint8_t endpoint = 0;  // as on the wire, with the direction bit; control: 0
  std::uint32_t flags = 0;    // wire::kFlag*
  std::array<std::uint8_t, wire::kSetupLength> setup{};  // control only
  std::uint32_t length = 0;   // data_len: bytes to send, or room to receive (control: wLength)
  std::int32_t interval = 0;  // interrupt and isochronous: usbmon's interval (see interval())
  std::vector<std::uint32_t> iso_lengths;

  // Control: bit 7 of bmRequestType; the others: the endpoint's direction bit.
  bool is_in() const;
};

// How it ended.
struct Outcome {
  wire::UrbStatus status = wire::UrbStatus::Completed;
  std::uint32_t actual_length = 0;  // the data stage for control; unused for isochronous
  std::span<const wire::IsoPacketResult> iso;
};

// The 24-byte pcap file header (little-endian, microsecond timestamps, link type 220).
std::array<std::uint8_t, kPcapFileHeaderLength> pcap_file_header();

// Each appends one whole pcap record (record header, usbmon header, iso descriptors, data).
// `out_data`: the OUT data (`urb.length` bytes; ignored for IN). `in_buffer`: the IN data laid
// out as in the program's buffer (isochronous packets at the offsets of their requested
// lengths); ignored for OUT.
void append_submission(wire::Bytes& out, const Urb& urb, wire::ByteView out_data, Timestamp ts);
void append_completion(wire::Bytes& out, const Urb& urb, const Outcome& outcome,
                       wire::ByteView in_buffer, Timestamp ts);
// A submission that failed before reaching the device; `error` is a negative errno.
void append_submission_error(wire::Bytes& out, const Urb& urb, std::int32_t error, Timestamp ts);
// What a device's enumeration would have shown: GET_DESCRIPTOR(DEVICE) and
// GET_DESCRIPTOR(CONFIGURATION) for each configuration, submission and completion, answered
// with the descriptors of the device record. usbnet reads them from the agent's device list, not
// from control transfers, but Wireshark learns each interface's class from them (which
// dissector reads an endpoint's data). `first_id`: the URB id of the first of these requests;
// the next ones count up from it.
void append_enumeration(wire::Bytes& out, const wire::DeviceInfo& device, std::uint16_t bus,
                        std::uint64_t first_id, Timestamp ts);

// The status usbmon reports for a libusb status: a negative errno, as usbfs sees it (0 for
// COMPLETED).
std::int32_t errno_status(wire::UrbStatus status);
// usbmon's interval for an interrupt or isochronous endpoint of a device at `speed`
// (libusb_speed): bInterval (frames) below high speed, 2^(bInterval-1) (microframes) from high
// speed on, as usbfs sets it; 0 for other types or an unknown endpoint.
std::int32_t interval(const wire::DeviceInfo& device, std::uint8_t endpoint, wire::UrbType type);

}  // namespace usbnet::capture
