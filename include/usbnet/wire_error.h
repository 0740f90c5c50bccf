// Every way a byte stream can fail to be a valid usbnet conversation, each with its own value so
// that tests, logs and the peer's ERROR text say exactly what was wrong.
#pragma once

#include <cstdint>
#include <string_view>

namespace usbnet::wire {

enum class WireError : std::uint8_t {
  // Framing.
  FrameTooLarge,  // the length prefix exceeds kMaxFrameLength
  // Message header.
  Truncated,        // the frame ends before a fixed part or a declared field is complete
  BadMagic,         // the first four bytes are not 0x55534200
  UnknownType,      // the message type is not one of MessageType
  ReservedNotZero,  // a reserved field is not zero
  LengthMismatch,   // the frame holds bytes beyond what its fields declare
  FieldTooLong,     // a variable-length field is longer than its length field can express
  // Field ranges.
  UnsupportedVersion,  // HELLO names a protocol version this side does not speak
  UnknownCapability,   // HELLO sets a capability bit this version does not define
  BadAuthMethod,       // HELLO names an unknown authentication method
  AuthTooLong,         // HELLO authentication data longer than kMaxAuthLength
  BadErrorCode,        // ERROR code is not a libusb error code
  TextTooLong,         // ERROR text longer than kMaxTextLength
  TooManyDevices,      // DEVICE_LIST count above kMaxDevicesPerList
  TooManyPorts,        // port_count above kMaxPortNumbers
  BadSpeed,            // speed above kMaxSpeed
  TooManyStrings,      // string_count above kMaxStringsPerDevice
  BadConfiguration,    // SET_CONFIGURATION value outside -1..255
  BadKernelDriverOp,   // KERNEL_DRIVER op unknown
  BadUrbType,          // urb_type above 3
  BadEndpoint,         // reserved endpoint bits set, or a non-control URB on endpoint 0
  BadFlags,            // unknown transfer flag bits
  BadSetupLength,      // setup_len is not 8 for control / 0 for the others
  SetupMismatch,       // control data_len differs from wLength, or setup bytes of a non-control
  TransferTooLarge,    // data_len above kMaxTransferLength
  BadIsoPackets,       // iso_packets is 0 for an isochronous URB, nonzero for another, or too many
  IsoLengthMismatch,   // the iso packet lengths do not add up to data_len
  PayloadTooLarge,     // more payload than data_len declares
  UnexpectedPayload,   // OUT data in an IN URB
  BadStatus,           // a URB or iso packet status above kMaxUrbStatus
  BadDataLength,       // URB_COMPLETE data_len disagrees with actual_length or the iso results
  // Reassembly of payload pieces.
  UnknownTransfer,    // URB_DATA for a trans_id that expects no more payload
  PieceOutOfOrder,    // URB_DATA offset is not where the payload so far ends
  PieceOverflow,      // URB_DATA runs past the payload length declared for its transfer
  DuplicateTransfer,  // a transfer's payload starts while the same trans_id is still incomplete
  TooManyPending,     // more transfers awaiting pieces than the assembler allows
};

// Short stable name ("bad magic") and a sentence for logs and ERROR text.
std::string_view wire_error_name(WireError error);
std::string_view wire_error_description(WireError error);

}  // namespace usbnet::wire
