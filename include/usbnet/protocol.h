// usbnet wire protocol, version 1: constants and the packed layout of every fixed-size part.
//
// This header is the machine-readable half of docs/PROTOCOL.md; a third party can write a peer
// from the two. It has no dependencies beyond the C++ standard library and no code that touches
// a socket or libusb.
//
// Byte order: every multi-byte integer is little-endian (least significant byte first), the same
// order USB itself uses for the setup packet and for descriptors, so a frame has one byte order
// from end to end. The layouts below use le16/le32 fields that store their bytes in that order,
// so `sizeof` and `offsetof` of each struct are the wire offsets (pinned by static_asserts).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <type_traits>

namespace usbnet::wire {

// ---------------------------------------------------------------------------------------------
// Little-endian integer fields of a packed layout.

template <typename T>
struct LittleEndian {
  std::uint8_t bytes[sizeof(T)];

  constexpr T get() const {
    using U = std::make_unsigned_t<T>;
    U value = 0;
    for (std::size_t i = 0; i < sizeof(T); ++i) value |= static_cast<U>(bytes[i]) << (8 * i);
    return static_cast<T>(value);
  }
  constexpr void set(T v) {
    using U = std::make_unsigned_t<T>;
    const U value = static_cast<U>(v);
    for (std::size_t i = 0; i < sizeof(T); ++i)
      bytes[i] = static_cast<std::uint8_t>(value >> (8 * i));
  }
};
using le16 = LittleEndian<std::uint16_t>;
using le32 = LittleEndian<std::uint32_t>;
using sle32 = LittleEndian<std::int32_t>;
static_assert(sizeof(le16) == 2 && sizeof(le32) == 4 && alignof(le32) == 1);

// ---------------------------------------------------------------------------------------------
// Constants.

inline constexpr std::uint32_t kMagic = 0x55534200;  // "USB\0" read as a number
inline constexpr std::uint16_t kProtocolVersion = 1;
inline constexpr std::uint16_t kDefaultPort = 3241;

// A frame is a le32 length followed by that many bytes of message. Length 0 is a heartbeat.
inline constexpr std::size_t kFrameLengthSize = 4;
// Hard cap on a frame's length: checked before anything is allocated for it.
inline constexpr std::uint32_t kMaxFrameLength = 2u << 20;  // 2 MiB
// Hard cap on the data of one transfer (OUT data, or IN buffer requested).
inline constexpr std::uint32_t kMaxTransferLength = 64u << 20;  // 64 MiB
// Payload pieces: a sender never puts more than this many payload bytes in one frame.
inline constexpr std::uint32_t kMinPieceSize = 512;
inline constexpr std::uint32_t kMaxPieceSize = 1u << 20;       // 1 MiB
inline constexpr std::uint32_t kDefaultPieceSize = 64u << 10;  // 64 KiB, chosen by measurement
inline constexpr std::uint16_t kMaxIsoPackets = 4096;
inline constexpr std::uint16_t kMaxTextLength = 1024;  // ERROR text, bytes of UTF-8
inline constexpr std::uint16_t kMaxAuthLength = 4096;
inline constexpr std::uint8_t kMaxPortNumbers = 7;  // USB 3 allows a tier depth of 7
inline constexpr std::uint32_t kMaxDevicesPerList = 1024;
inline constexpr std::uint16_t kMaxStringsPerDevice = 1024;
inline constexpr std::size_t kDeviceDescriptorLength = 18;
inline constexpr std::size_t kSetupLength = 8;

// ---------------------------------------------------------------------------------------------
// Enumerations. Values are wire values; they never change meaning within a protocol version.

enum class MessageType : std::uint16_t {
  Hello = 0x0001,
  Error = 0x0002,
  Reply = 0x0003,
  ListDevices = 0x0010,
  DeviceList = 0x0011,
  DeviceArrived = 0x0012,
  DeviceLeft = 0x0013,
  Open = 0x0020,
  Close = 0x0021,
  SetConfiguration = 0x0022,
  GetConfiguration = 0x0023,
  ClaimInterface = 0x0024,
  ReleaseInterface = 0x0025,
  SetAltSetting = 0x0026,
  ClearHalt = 0x0027,
  ResetDevice = 0x0028,
  KernelDriver = 0x0029,
  UrbSubmit = 0x0030,
  UrbComplete = 0x0031,
  UrbData = 0x0032,
  UrbCancel = 0x0033,
};

// urb_type: the kind of transfer a URB is.
enum class UrbType : std::uint8_t { Control = 0, Bulk = 1, Interrupt = 2, Iso = 3 };

// Completion status of a URB and of each isochronous packet; the values are libusb's
// enum libusb_transfer_status.
enum class UrbStatus : std::uint32_t {
  Completed = 0,
  Error = 1,
  TimedOut = 2,
  Cancelled = 3,
  Stall = 4,
  NoDevice = 5,
  Overflow = 6,
};
inline constexpr std::uint32_t kMaxUrbStatus = 6;

// Transfer flags carried in URB_SUBMIT; the values are libusb's LIBUSB_TRANSFER_* flags.
inline constexpr std::uint32_t kFlagShortNotOk = 1u << 0;
inline constexpr std::uint32_t kFlagFreeBuffer = 1u << 1;    // meaningful to the client only
inline constexpr std::uint32_t kFlagFreeTransfer = 1u << 2;  // meaningful to the client only
inline constexpr std::uint32_t kFlagAddZeroPacket = 1u << 3;
inline constexpr std::uint32_t kKnownTransferFlags = 0x0f;

// Capability bits of HELLO.
inline constexpr std::uint32_t kCapIso = 1u << 0;           // isochronous URBs
inline constexpr std::uint32_t kCapHotplug = 1u << 1;       // DEVICE_ARRIVED / DEVICE_LEFT events
inline constexpr std::uint32_t kCapKernelDriver = 1u << 2;  // KERNEL_DRIVER does real work
inline constexpr std::uint32_t kKnownCapabilities = 0x07;

// Authentication methods of HELLO. Pair: auth is a pairing proof (kPairingProofLength bytes),
// the client's in its HELLO, the agent's in its answer (docs/PROTOCOL.md, "Pairing").
enum class AuthMethod : std::uint8_t { None = 0, Token = 1, Pair = 2 };
inline constexpr std::uint8_t kMaxAuthMethod = 2;
inline constexpr std::uint16_t kPairingProofLength = 32;  // an HMAC-SHA256

// KERNEL_DRIVER operations.
enum class KernelDriverOp : std::uint8_t { Query = 0, Detach = 1, Attach = 2 };
inline constexpr std::uint8_t kMaxKernelDriverOp = 2;

// Device speeds; the values are libusb's enum libusb_speed.
inline constexpr std::uint8_t kMaxSpeed = 5;

// Error codes in ERROR; the values are libusb's enum libusb_error.
namespace error_code {
inline constexpr std::int32_t kIo = -1;
inline constexpr std::int32_t kInvalidParam = -2;
inline constexpr std::int32_t kAccess = -3;
inline constexpr std::int32_t kNoDevice = -4;
inline constexpr std::int32_t kNotFound = -5;
inline constexpr std::int32_t kBusy = -6;
inline constexpr std::int32_t kTimeout = -7;
inline constexpr std::int32_t kOverflow = -8;
inline constexpr std::int32_t kPipe = -9;
inline constexpr std::int32_t kInterrupted = -10;
inline constexpr std::int32_t kNoMem = -11;
inline constexpr std::int32_t kNotSupported = -12;
inline constexpr std::int32_t kOther = -99;
}  // namespace error_code
constexpr bool is_known_error_code(std::int32_t code) {
  return (code <= -1 && code >= -12) || code == error_code::kOther;
}

// ---------------------------------------------------------------------------------------------
// Packed layouts. Every message starts with MessageHeader; the body follows at offset 12.

struct MessageHeader {
  le32 magic;     // kMagic
  le16 type;      // MessageType
  le16 reserved;  // 0
  le32 id;        // trans_id of a URB, id of a request and of its reply; 0 for events
};
static_assert(sizeof(MessageHeader) == 12);

// HELLO: fixed part, then auth_length bytes of authentication data, then name_length bytes of
// the sender's name (UTF-8, for logs).
struct HelloBody {
  le16 version;
  le16 reserved;
  le32 capabilities;
  le32 heartbeat_ms;  // the sender sends some frame at least this often
  std::uint8_t auth_method;
  std::uint8_t name_length;
  le16 auth_length;
};
static_assert(sizeof(HelloBody) == 16);

// ERROR: fixed part, then text_length bytes of UTF-8 text.
struct ErrorBody {
  sle32 code;  // a libusb error code
  le16 text_length;
};
static_assert(sizeof(ErrorBody) == 6);

struct ReplyBody {
  le32 value;
};
static_assert(sizeof(ReplyBody) == 4);

struct DeviceListBody {
  le32 count;  // then `count` device records
};
static_assert(sizeof(DeviceListBody) == 4);

// A device record: fixed part, then num_configs times (le16 length, raw configuration
// descriptor), then bos_length bytes of raw BOS descriptor, then string_count times
// (StringHeader, raw string descriptor).
struct DeviceRecordHeader {
  le32 device_id;  // never reused by the agent
  le32 parent_id;  // device_id of the parent hub if the agent exports it, else 0
  std::uint8_t bus_number;
  std::uint8_t device_address;
  std::uint8_t speed;          // libusb_speed
  std::uint8_t active_config;  // bConfigurationValue, 0 when unconfigured
  std::uint8_t port_count;     // valid entries of port_numbers
  std::uint8_t port_numbers[kMaxPortNumbers];
  std::uint8_t device_descriptor[kDeviceDescriptorLength];
  std::uint8_t num_configs;
  std::uint8_t reserved;
  le16 bos_length;
  le16 string_count;
};
static_assert(sizeof(DeviceRecordHeader) == 44);

struct StringHeader {
  std::uint8_t index;
  le16 langid;  // 0 for string 0, the table of language ids
  std::uint8_t length;
};
static_assert(sizeof(StringHeader) == 4);

struct DeviceIdBody {  // DEVICE_LEFT, OPEN
  le32 device_id;
};
struct HandleBody {  // CLOSE, GET_CONFIGURATION, RESET_DEVICE
  le32 handle;
};
struct SetConfigurationBody {
  le32 handle;
  sle32 configuration;  // bConfigurationValue, or -1 for unconfigured
};
struct InterfaceBody {  // CLAIM_INTERFACE, RELEASE_INTERFACE
  le32 handle;
  std::uint8_t interface_number;
};
struct SetAltSettingBody {
  le32 handle;
  std::uint8_t interface_number;
  std::uint8_t alt_setting;
};
struct ClearHaltBody {
  le32 handle;
  std::uint8_t endpoint;
};
struct KernelDriverBody {
  le32 handle;
  std::uint8_t op;  // KernelDriverOp
  std::uint8_t interface_number;
};
static_assert(sizeof(DeviceIdBody) == 4 && sizeof(HandleBody) == 4);
static_assert(sizeof(SetConfigurationBody) == 8 && sizeof(InterfaceBody) == 5);
static_assert(sizeof(SetAltSettingBody) == 6 && sizeof(ClearHaltBody) == 5);
static_assert(sizeof(KernelDriverBody) == 6);

// URB_SUBMIT: the URB header's fields, from urb_type to setup (magic and trans_id are in
// MessageHeader), then what the agent needs; then iso_packets le32 packet lengths, then the first
// piece of OUT data (the rest follows in URB_DATA frames).
struct UrbSubmitBody {
  std::uint8_t urb_type;             // UrbType
  std::uint8_t endpoint;             // address including the direction bit
  le32 flags;                        // transfer flags
  le16 setup_len;                    // 8 for control, else 0
  le32 data_len;                     // OUT: bytes of data; IN: bytes requested
  std::uint8_t setup[kSetupLength];  // as USB defines it (wValue etc. little-endian)
  le32 handle;
  le32 timeout_ms;  // 0 = no timeout
  le16 iso_packets;
  le16 reserved;
};
static_assert(sizeof(UrbSubmitBody) == 32);

// URB_COMPLETE: fixed part, then iso_packets IsoResult entries, then the first piece of IN data.
struct UrbCompleteBody {
  le32 status;         // UrbStatus
  le32 actual_length;  // bytes transferred
  le32 data_len;       // IN data bytes that follow (here and in URB_DATA); 0 for OUT
  le16 iso_packets;
  le16 reserved;
};
static_assert(sizeof(UrbCompleteBody) == 16);

struct IsoResult {
  le32 status;  // UrbStatus
  le32 actual_length;
};
static_assert(sizeof(IsoResult) == 8);

// URB_DATA: one later piece of a URB's payload.
struct UrbDataBody {
  le32 offset;  // where the piece starts in the payload
};
static_assert(sizeof(UrbDataBody) == 4);

// The 8-byte USB setup packet (USB 2.0 spec 9.3).
struct SetupPacket {
  std::uint8_t bmRequestType;
  std::uint8_t bRequest;
  le16 wValue;
  le16 wIndex;
  le16 wLength;
};
static_assert(sizeof(SetupPacket) == kSetupLength);

std::string_view message_type_name(MessageType type);
// "LIBUSB_ERROR_BUSY" for -6, "LIBUSB_SUCCESS" for 0, "LIBUSB_ERROR_UNKNOWN" otherwise.
std::string_view error_code_name(std::int32_t code);
std::string_view urb_status_name(UrbStatus status);
bool is_known_message_type(std::uint16_t type);

}  // namespace usbnet::wire
