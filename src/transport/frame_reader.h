// The receiving half of a framed stream: reads what the channel has and turns it into messages.
// Internal to the transport (see framed_stream.h for the contract). One thread at a time (the
// stream's read lock).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "transport/byte_channel.h"
#include "usbnet/messages.h"
#include "usbnet/stream_decoder.h"

namespace usbnet::transport {

class FrameReader {
 public:
  // Why reading stopped for good: the stream must close with `reason`; after a protocol error
  // the peer is told why first (`tell_peer`).
  struct Failure {
    std::string reason;
    std::optional<wire::Error> tell_peer;
  };

  // `peer_name` is for log lines and must outlive the reader. A non-zero `frame_limit` caps
  // frames at that length and reads through a small buffer until admit().
  FrameReader(ByteChannel& channel, const std::string& peer_name, std::uint32_t frame_limit = 0);

  // Reads until the channel has nothing more (or for a bounded number of reads, or until
  // `more()` says no after a read), passing each message to `sink` as it is decoded.
  std::optional<Failure> read_available(wire::MessageSink& sink, const std::function<bool()>& more);
  // Lifts the frame limit at once and grows the read buffer before the next read (the sink may
  // call it while it is being fed).
  void admit();
  std::int64_t last_read_ns() const { return last_read_ns_.load(); }
  // The readiness of the descriptor the last read waited for (readable, for plain TCP).
  Readiness readiness() const { return readiness_.load(); }

 private:
  std::optional<Failure> consume(std::size_t n, bool direct, wire::MessageSink& sink);

  ByteChannel& channel_;
  const std::string& peer_name_;
  wire::StreamDecoder decoder_;
  std::vector<std::uint8_t> read_buffer_;
  bool small_reads_ = false;
  bool grow_ = false;  // admitted: the read buffer grows to full size before the next read
  std::atomic<std::int64_t> last_read_ns_;
  std::atomic<Readiness> readiness_{kReadable};
};

}  // namespace usbnet::transport
