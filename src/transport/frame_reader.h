// The receiving half of a framed TCP connection: reads what the socket has and turns it into
// messages. Internal to the transport (see connection.h for the contract). One thread at a time
// (the connection's read lock).
#pragma once

#include <atomic>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "usbnet/messages.h"
#include "usbnet/stream_decoder.h"

namespace usbnet::transport {

class FrameReader {
 public:
  // Why reading stopped for good: the connection must close with `reason`; after a protocol
  // error the peer is told why first (`tell_peer`).
  struct Failure {
    std::string reason;
    std::optional<wire::Error> tell_peer;
  };

  // `peer_name` is for log lines and must outlive the reader.
  FrameReader(int fd, const std::string& peer_name);

  // Reads until the socket has nothing more, passing each message to `sink` as it is decoded.
  std::optional<Failure> read_available(wire::MessageSink& sink);
  std::int64_t last_read_ns() const { return last_read_ns_.load(); }

 private:
  std::optional<Failure> consume(std::size_t n, bool direct, wire::MessageSink& sink);

  const int fd_;
  const std::string& peer_name_;
  wire::StreamDecoder decoder_;
  std::vector<std::uint8_t> read_buffer_;
  bool small_reads_ = false;
  std::atomic<std::int64_t> last_read_ns_;
};

}  // namespace usbnet::transport
