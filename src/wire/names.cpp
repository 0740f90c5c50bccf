// Human-readable names of wire enumerations and errors.
#include "usbnet/protocol.h"
#include "usbnet/wire_error.h"

namespace usbnet::wire {

std::string_view message_type_name(MessageType type) {
  switch (type) {
    case MessageType::Hello:
      return "HELLO";
    case MessageType::Error:
      return "ERROR";
    case MessageType::Reply:
      return "REPLY";
    case MessageType::ListDevices:
      return "LIST_DEVICES";
    case MessageType::DeviceList:
      return "DEVICE_LIST";
    case MessageType::DeviceArrived:
      return "DEVICE_ARRIVED";
    case MessageType::DeviceLeft:
      return "DEVICE_LEFT";
    case MessageType::Open:
      return "OPEN";
    case MessageType::Close:
      return "CLOSE";
    case MessageType::SetConfiguration:
      return "SET_CONFIGURATION";
    case MessageType::GetConfiguration:
      return "GET_CONFIGURATION";
    case MessageType::ClaimInterface:
      return "CLAIM_INTERFACE";
    case MessageType::ReleaseInterface:
      return "RELEASE_INTERFACE";
    case MessageType::SetAltSetting:
      return "SET_ALT_SETTING";
    case MessageType::ClearHalt:
      return "CLEAR_HALT";
    case MessageType::ResetDevice:
      return "RESET_DEVICE";
    case MessageType::KernelDriver:
      return "KERNEL_DRIVER";
    case MessageType::UrbSubmit:
      return "URB_SUBMIT";
    case MessageType::UrbComplete:
      return "URB_COMPLETE";
    case MessageType::UrbData:
      return "URB_DATA";
    case MessageType::UrbCancel:
      return "URB_CANCEL";
  }
  return "UNKNOWN";
}

bool is_known_message_type(std::uint16_t type) {
  return message_type_name(static_cast<MessageType>(type)) != "UNKNOWN";
}

std::string_view error_code_name(std::int32_t code) {
  switch (code) {
    case 0:
      return "LIBUSB_SUCCESS";
    case error_code::kIo:
      return "LIBUSB_ERROR_IO";
    case error_code::kInvalidParam:
      return "LIBUSB_ERROR_INVALID_PARAM";
    case error_code::kAccess:
      return "LIBUSB_ERROR_ACCESS";
    case error_code::kNoDevice:
      return "LIBUSB_ERROR_NO_DEVICE";
    case error_code::kNotFound:
      return "LIBUSB_ERROR_NOT_FOUND";
    case error_code::kBusy:
      return "LIBUSB_ERROR_BUSY";
    case error_code::kTimeout:
      return "LIBUSB_ERROR_TIMEOUT";
    case error_code::kOverflow:
      return "LIBUSB_ERROR_OVERFLOW";
    case error_code::kPipe:
      return "LIBUSB_ERROR_PIPE";
    case error_code::kInterrupted:
      return "LIBUSB_ERROR_INTERRUPTED";
    case error_code::kNoMem:
      return "LIBUSB_ERROR_NO_MEM";
    case error_code::kNotSupported:
      return "LIBUSB_ERROR_NOT_SUPPORTED";
    case error_code::kOther:
      return "LIBUSB_ERROR_OTHER";
  }
  return "LIBUSB_ERROR_UNKNOWN";
}

std::string_view urb_status_name(UrbStatus status) {
  switch (status) {
    case UrbStatus::Completed:
      return "COMPLETED";
    case UrbStatus::Error:
      return "ERROR";
    case UrbStatus::TimedOut:
      return "TIMED_OUT";
    case UrbStatus::Cancelled:
      return "CANCELLED";
    case UrbStatus::Stall:
      return "STALL";
    case UrbStatus::NoDevice:
      return "NO_DEVICE";
    case UrbStatus::Overflow:
      return "OVERFLOW";
  }
  return "UNKNOWN";
}

namespace {
struct ErrorText {
  std::string_view name;
  std::string_view description;
};

ErrorText error_text(WireError error) {
  switch (error) {
    case WireError::FrameTooLarge:
      return {"frame too large", "the frame length exceeds the 2 MiB cap"};
    case WireError::Truncated:
      return {"truncated", "the frame ends before a field it declares is complete"};
    case WireError::BadMagic:
      return {"bad magic", "the message does not start with the magic 0x55534200"};
    case WireError::UnknownType:
      return {"unknown type", "the message type is not defined"};
    case WireError::ReservedNotZero:
      return {"reserved not zero", "a reserved field is not zero"};
    case WireError::LengthMismatch:
      return {"length mismatch", "the frame holds more bytes than its fields declare"};
    case WireError::FieldTooLong:
      return {"field too long", "a field is longer than its length field can express"};
    case WireError::UnsupportedVersion:
      return {"unsupported version", "the peer speaks a protocol version other than 1"};
    case WireError::UnknownCapability:
      return {"unknown capability", "HELLO sets a capability bit that is not defined"};
    case WireError::BadAuthMethod:
      return {"bad auth method", "HELLO names an unknown authentication method"};
    case WireError::AuthTooLong:
      return {"auth too long", "HELLO authentication data is longer than 4096 bytes"};
    case WireError::BadErrorCode:
      return {"bad error code", "ERROR carries a code that is not a libusb error code"};
    case WireError::TextTooLong:
      return {"text too long", "ERROR text is longer than 1024 bytes"};
    case WireError::TooManyDevices:
      return {"too many devices", "DEVICE_LIST holds more than 1024 devices"};
    case WireError::TooManyPorts:
      return {"too many ports", "a device record has more than 7 port numbers"};
    case WireError::BadSpeed:
      return {"bad speed", "a device record has an unknown speed"};
    case WireError::TooManyStrings:
      return {"too many strings", "a device record has more than 1024 string descriptors"};
    case WireError::BadConfiguration:
      return {"bad configuration", "SET_CONFIGURATION value is outside -1..255"};
    case WireError::BadKernelDriverOp:
      return {"bad kernel driver op", "KERNEL_DRIVER names an unknown operation"};
    case WireError::BadUrbType:
      return {"bad urb type", "urb_type is not 0, 1, 2 or 3"};
    case WireError::BadEndpoint:
      return {"bad endpoint", "the endpoint has reserved bits set or is 0 for a non-control URB"};
    case WireError::BadFlags:
      return {"bad flags", "the transfer flags have unknown bits set"};
    case WireError::BadSetupLength:
      return {"bad setup length", "setup_len must be 8 for control URBs and 0 for the others"};
    case WireError::SetupMismatch:
      return {"setup mismatch",
              "control data_len differs from wLength, or a non-control URB has setup bytes"};
    case WireError::TransferTooLarge:
      return {"transfer too large", "data_len exceeds the 64 MiB cap"};
    case WireError::BadIsoPackets:
      return {"bad iso packets",
              "the iso packet count is 0 for an isochronous URB, set for another, or over 4096"};
    case WireError::IsoLengthMismatch:
      return {"iso length mismatch", "the iso packet lengths do not add up to data_len"};
    case WireError::PayloadTooLarge:
      return {"payload too large", "the message carries more payload than data_len declares"};
    case WireError::UnexpectedPayload:
      return {"unexpected payload", "a URB_SUBMIT for an IN transfer carries data"};
    case WireError::BadStatus:
      return {"bad status", "a URB status is not a known status"};
    case WireError::BadDataLength:
      return {"bad data length",
              "URB_COMPLETE data_len disagrees with actual_length or the iso results"};
    case WireError::UnknownTransfer:
      return {"unknown transfer", "URB_DATA for a transfer that expects no more payload"};
    case WireError::PieceOutOfOrder:
      return {"piece out of order", "URB_DATA does not start where the payload so far ends"};
    case WireError::PieceOverflow:
      return {"piece overflow", "URB_DATA runs past the payload length of its transfer"};
    case WireError::DuplicateTransfer:
      return {"duplicate transfer", "a trans_id is reused while its payload is incomplete"};
    case WireError::TooManyPending:
      return {"too many pending", "too many transfers are waiting for payload pieces"};
  }
  return {"unknown error", "unknown wire error"};
}
}  // namespace

std::string_view wire_error_name(WireError error) { return error_text(error).name; }
std::string_view wire_error_description(WireError error) { return error_text(error).description; }

}  // namespace usbnet::wire
