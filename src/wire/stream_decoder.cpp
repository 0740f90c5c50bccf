// Incremental frame decoding. Whole frames found in the input are decoded in place (no copy);
// only a frame split across feed() calls is gathered into `partial_`, whose size is bounded by
// the frame cap because the length prefix is judged before anything is reserved; or, for a
// large URB payload the sink has a place for, only its head is kept and the payload goes there.
#include <algorithm>
#include <cstring>

#include "usbnet/stream_decoder.h"

namespace usbnet::wire {

namespace {
std::uint32_t read_length(const std::uint8_t* p) {
  le32 length;
  std::memcpy(length.bytes, p, kFrameLengthSize);
  return length.get();
}
}  // namespace

StreamDecoder::StreamDecoder(std::uint32_t max_frame_length)
    : max_frame_length_(std::min(max_frame_length, kMaxFrameLength)) {}

void StreamDecoder::set_max_frame_length(std::uint32_t max_frame_length) {
  max_frame_length_ = std::min(max_frame_length, kMaxFrameLength);
}

std::span<std::uint8_t> MessageSink::payload_destination(const Message&, std::size_t) { return {}; }

bool StreamDecoder::try_direct(ByteView prefix, std::uint32_t length, MessageSink& sink) {
  if (direct_declined_ || length - prefix.size() < kDirectMinimum) return false;
  const auto head_length = urb_head_length(prefix);
  if (!head_length) return false;
  if (*head_length > prefix.size() || *head_length > length) {
    direct_declined_ = *head_length > length;  // malformed: reported when the frame is whole
    return false;
  }
  direct_declined_ = true;  // asked once per frame
  const ByteView head = prefix.first(*head_length);
  auto message = decode_split(head, {});
  if (!message) return false;  // reported when the frame is whole
  const std::size_t payload_length = length - *head_length;
  const std::span<std::uint8_t> place = sink.payload_destination(*message, payload_length);
  if (place.size() != payload_length || payload_length == 0) return false;
  const ByteView arrived = prefix.subspan(*head_length);
  std::memcpy(place.data(), arrived.data(), arrived.size());
  direct_head_.assign(head.begin(), head.end());
  direct_ = place;
  direct_received_ = arrived.size();
  partial_.clear();
  pending_.reset();
  return true;
}

std::span<std::uint8_t> StreamDecoder::direct_target() const {
  return direct_.subspan(direct_received_);
}

std::optional<WireError> StreamDecoder::direct_received(std::size_t n, MessageSink& sink) {
  if (error_) return error_;
  direct_received_ += n;
  if (direct_received_ < direct_.size()) return std::nullopt;
  const std::span<std::uint8_t> payload = direct_;
  direct_ = {};
  direct_received_ = 0;
  direct_declined_ = false;
  auto message = decode_split(direct_head_, payload);
  if (!message) {
    error_ = message.error();
  } else {
    sink.on_message(std::move(*message));
  }
  return error_;
}

std::optional<WireError> StreamDecoder::deliver(ByteView frame_body, MessageSink& sink) {
  auto message = decode(frame_body);
  if (!message) return message.error();
  sink.on_message(std::move(*message));
  return std::nullopt;
}

std::optional<WireError> StreamDecoder::feed(ByteView bytes, MessageSink& sink) {
  if (!direct_.empty() && !error_) {
    // The caller should have read into direct_target(); take these bytes as payload.
    const std::size_t n = std::min(bytes.size(), direct_target().size());
    std::memcpy(direct_target().data(), bytes.data(), n);
    if (direct_received(n, sink)) return error_;
    bytes = bytes.subspan(n);
  }
  while (!error_ && !bytes.empty()) {
    if (partial_.empty()) {
      // Fast path: whole frames straight from the input.
      if (bytes.size() < kFrameLengthSize) {
        partial_.assign(bytes.begin(), bytes.end());
        return std::nullopt;
      }
      const std::uint32_t length = read_length(bytes.data());
      if (length > max_frame_length_) {
        error_ = WireError::FrameTooLarge;
        break;
      }
      if (length == 0) {
        sink.on_heartbeat();
        bytes = bytes.subspan(kFrameLengthSize);
        continue;
      }
      if (bytes.size() >= kFrameLengthSize + length) {
        error_ = deliver(bytes.subspan(kFrameLengthSize, length), sink);
        bytes = bytes.subspan(kFrameLengthSize + length);
        continue;
      }
      direct_declined_ = false;
      if (try_direct(bytes.subspan(kFrameLengthSize), length, sink)) return std::nullopt;
      partial_.reserve(kFrameLengthSize + length);
      partial_.assign(bytes.begin(), bytes.end());
      pending_ = length;
      return std::nullopt;
    }

    if (!pending_) {
      // The length prefix itself was split.
      const std::size_t need = kFrameLengthSize - partial_.size();
      const std::size_t take = std::min(need, bytes.size());
      partial_.insert(partial_.end(), bytes.begin(), bytes.begin() + take);
      bytes = bytes.subspan(take);
      if (partial_.size() < kFrameLengthSize) return std::nullopt;
      const std::uint32_t length = read_length(partial_.data());
      if (length > max_frame_length_) {
        error_ = WireError::FrameTooLarge;
        break;
      }
      if (length == 0) {
        partial_.clear();
        sink.on_heartbeat();
        continue;
      }
      partial_.reserve(kFrameLengthSize + length);
      pending_ = length;
      direct_declined_ = false;
    }

    const std::size_t need = kFrameLengthSize + *pending_ - partial_.size();
    const std::size_t take = std::min(need, bytes.size());
    partial_.insert(partial_.end(), bytes.begin(), bytes.begin() + take);
    bytes = bytes.subspan(take);
    if (take < need) {
      try_direct(ByteView(partial_).subspan(kFrameLengthSize), *pending_, sink);
      return std::nullopt;
    }
    error_ = deliver(ByteView(partial_).subspan(kFrameLengthSize), sink);
    partial_.clear();
    pending_.reset();
  }
  if (error_) {
    partial_.clear();
    partial_.shrink_to_fit();
  }
  return error_;
}

}  // namespace usbnet::wire
