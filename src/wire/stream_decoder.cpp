// Incremental frame decoding. Whole frames found in the input are decoded in place (no copy);
// only a frame split across feed() calls is gathered into `partial_`, whose size is bounded by
// the frame cap because the length prefix is judged before anything is reserved.
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

std::optional<WireError> StreamDecoder::deliver(ByteView frame_body, MessageSink& sink) {
  auto message = decode(frame_body);
  if (!message) return message.error();
  sink.on_message(std::move(*message));
  return std::nullopt;
}

std::optional<WireError> StreamDecoder::feed(ByteView bytes, MessageSink& sink) {
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
    }

    const std::size_t need = kFrameLengthSize + *pending_ - partial_.size();
    const std::size_t take = std::min(need, bytes.size());
    partial_.insert(partial_.end(), bytes.begin(), bytes.begin() + take);
    bytes = bytes.subspan(take);
    if (take < need) return std::nullopt;
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
