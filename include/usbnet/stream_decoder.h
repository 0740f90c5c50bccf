// Incremental decoding of a byte stream into frames and messages.
//
// Feed it bytes as they arrive, in any split; it calls the sink once per heartbeat and once per
// whole message. It never allocates more than the frame cap: the length prefix is checked before
// the body is buffered. After the first error the decoder stays failed (the connection must be
// closed: a framing error leaves no way to find the next frame).
//
// Large URB payloads can skip the decoder's buffer: when a URB_SUBMIT, URB_COMPLETE or URB_DATA
// frame's header has arrived and at least kDirectMinimum bytes of its payload have not, the sink
// is asked where the payload belongs (payload_destination). If it names a place, the payload
// bytes already fed are copied there, and the caller reads the rest of the payload straight into
// direct_target() and reports it with direct_received(); the message then reaches on_message
// with its payload viewing that place.
#pragma once

#include <cstdint>
#include <optional>
#include <span>

#include "usbnet/messages.h"

namespace usbnet::wire {

class MessageSink {
 public:
  virtual ~MessageSink() = default;
  virtual void on_heartbeat() {}
  // Payload views in `message` are valid only during the call.
  virtual void on_message(Message&& message) = 0;
  // Where the `length` payload bytes of the URB message `head` (whose payload view is empty)
  // belong, or an empty span (the default) to let the decoder gather them. A span of any other
  // length than `length` also declines. The place must stay valid until the message has been
  // delivered or the decoder is destroyed.
  virtual std::span<std::uint8_t> payload_destination(const Message& head, std::size_t length);
};

class StreamDecoder {
 public:
  // Payloads with fewer bytes than this still to come are gathered: reading them directly would
  // cost a system call to save a small copy.
  static constexpr std::size_t kDirectMinimum = 8192;

  explicit StreamDecoder(std::uint32_t max_frame_length = kMaxFrameLength);
  // Changes the cap for the frames whose length prefix has not been judged yet (a sink may call
  // it from on_message: the next frame of the same input is judged by the new cap).
  void set_max_frame_length(std::uint32_t max_frame_length);

  // Decodes everything `bytes` completes. Returns the first error, after which the decoder is
  // failed and ignores further input. The sink may not call feed() re-entrantly.
  std::optional<WireError> feed(ByteView bytes, MessageSink& sink);

  // While a payload is read directly: where the next bytes of the stream go (read at most this
  // many into it, then call direct_received). Empty otherwise: feed() takes the bytes.
  std::span<std::uint8_t> direct_target() const;
  // `n` bytes were read into direct_target(); delivers the message once its payload is whole.
  std::optional<WireError> direct_received(std::size_t n, MessageSink& sink);

  bool failed() const { return error_.has_value(); }
  std::optional<WireError> error() const { return error_; }
  // Bytes of an incomplete frame held back, waiting for the rest.
  std::size_t buffered() const { return partial_.size(); }

 private:
  std::optional<WireError> deliver(ByteView frame_body, MessageSink& sink);
  // An incomplete frame's body begins with `prefix` and is `length` bytes long: asks the sink
  // for a place for its payload. True if the frame now continues directly (prefix consumed).
  bool try_direct(ByteView prefix, std::uint32_t length, MessageSink& sink);

  std::uint32_t max_frame_length_;
  Bytes partial_;                         // an incomplete frame, its prefix included
  std::optional<std::uint32_t> pending_;  // body length of the incomplete frame, once known
  bool direct_declined_ = false;          // the incomplete frame was offered and declined
  // The payload being read directly: the frame's head (without length prefix), where the
  // payload goes, and how much of it is there.
  Bytes direct_head_;
  std::span<std::uint8_t> direct_;
  std::size_t direct_received_ = 0;
  std::optional<WireError> error_;
};

}  // namespace usbnet::wire
