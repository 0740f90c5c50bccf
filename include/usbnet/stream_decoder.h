// Incremental decoding of a byte stream into frames and messages.
//
// Feed it bytes as they arrive, in any split; it calls the sink once per heartbeat and once per
// whole message. It never allocates more than the frame cap: the length prefix is checked before
// the body is buffered. After the first error the decoder stays failed (the connection must be
// closed: a framing error leaves no way to find the next frame).
#pragma once

#include <cstdint>
#include <optional>

#include "usbnet/messages.h"

namespace usbnet::wire {

class MessageSink {
 public:
  virtual ~MessageSink() = default;
  virtual void on_heartbeat() {}
  // Payload views in `message` are valid only during the call.
  virtual void on_message(Message&& message) = 0;
};

class StreamDecoder {
 public:
  explicit StreamDecoder(std::uint32_t max_frame_length = kMaxFrameLength);

  // Decodes everything `bytes` completes. Returns the first error, after which the decoder is
  // failed and ignores further input. The sink may not call feed() re-entrantly.
  std::optional<WireError> feed(ByteView bytes, MessageSink& sink);

  bool failed() const { return error_.has_value(); }
  std::optional<WireError> error() const { return error_; }
  // Bytes of an incomplete frame held back, waiting for the rest.
  std::size_t buffered() const { return partial_.size(); }

 private:
  std::optional<WireError> deliver(ByteView frame_body, MessageSink& sink);

  std::uint32_t max_frame_length_;
  Bytes partial_;                         // an incomplete frame, its prefix included
  std::optional<std::uint32_t> pending_;  // body length of the incomplete frame, once known
  std::optional<WireError> error_;
};

}  // namespace usbnet::wire
