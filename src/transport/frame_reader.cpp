#include "transport/frame_reader.h"

#include "common/log.h"
#include "transport/now_ns.h"

namespace usbnet::transport {

namespace {

// A read takes at most this much of small frames: also the most a handler that stops wanting
// input (backpressure) is handed after it said so.
constexpr std::size_t kReadBufferSize = 256 * 1024;
// The read after a large payload: enough for the heads of the frames that follow. Also the
// whole read buffer of a stream not admitted yet.
constexpr std::size_t kSmallRead = 4096;

}  // namespace

FrameReader::FrameReader(ByteChannel& channel, const std::string& peer_name,
                         std::uint32_t frame_limit)
    : channel_(channel),
      peer_name_(peer_name),
      decoder_(frame_limit == 0 ? wire::kMaxFrameLength : frame_limit),
      read_buffer_(frame_limit == 0 ? kReadBufferSize : kSmallRead),
      last_read_ns_(now_ns()) {}

void FrameReader::admit() {
  decoder_.set_max_frame_length(wire::kMaxFrameLength);
  grow_ = read_buffer_.size() < kReadBufferSize;
}

std::optional<FrameReader::Failure> FrameReader::read_available(wire::MessageSink& sink,
                                                                const std::function<bool()>& more) {
  for (int rounds = 0; rounds < 64; ++rounds) {
    if (rounds > 0 && !more()) return std::nullopt;
    if (grow_) {  // no view into the buffer is alive between reads
      read_buffer_.resize(kReadBufferSize);
      grow_ = false;
    }
    // A large URB payload goes straight to its transfer buffer; otherwise the read buffer takes
    // what is there: all of it, or only a little after a large payload, so that the next large
    // frame's head arrives without much of its payload (which would be copied).
    const std::span<std::uint8_t> direct = decoder_.direct_target();
    const std::span<std::uint8_t> into =
        !direct.empty() ? direct
                        : std::span<std::uint8_t>(read_buffer_)
                              .first(std::min(small_reads_ ? kSmallRead : read_buffer_.size(),
                                              read_buffer_.size()));
    // With a payload's rest, the read goes on into the read buffer: the next frame's head
    // usually arrives with it (one system call per piece of a large transfer, not two).
    const std::span<std::uint8_t> after =
        std::span<std::uint8_t>(read_buffer_).first(std::min(kSmallRead, read_buffer_.size()));
    const IoResult result = direct.empty() ? channel_.read(into) : channel_.read_into(into, after);
    switch (result.status) {
      case IoResult::Status::Done:
        break;
      case IoResult::Status::WouldBlock:
        readiness_.store(result.wait_for, std::memory_order_relaxed);
        return std::nullopt;
      case IoResult::Status::Closed:
        return Failure{"connection closed by peer", {}};
      case IoResult::Status::Failed:
        return Failure{result.error, {}};
    }
    readiness_.store(kReadable, std::memory_order_relaxed);
    const std::size_t got = result.bytes;
    const std::size_t into_got = std::min(got, into.size());
    if (auto failure = consume(into_got, !direct.empty(), sink)) return failure;
    if (got > into_got) {  // the bytes after the payload's rest, in the read buffer
      if (auto failure = consume(got - into_got, false, sink)) return failure;
    }
    if (direct.empty() && got == into.size() && decoder_.direct_target().empty()) {
      small_reads_ = false;  // small frames queue up: read them in bulk
    }
    // A short read took everything there was (unless the channel holds more it has decoded
    // already): the next read would find nothing.
    const std::size_t asked = direct.empty() ? into.size() : into.size() + after.size();
    if (got < asked && !channel_.has_buffered_input()) return std::nullopt;
  }
  return std::nullopt;
}

// Decodes `n` bytes just read (into the read buffer, or directly to a payload's place).
std::optional<FrameReader::Failure> FrameReader::consume(std::size_t n, bool direct,
                                                         wire::MessageSink& sink) {
  last_read_ns_ = now_ns();
  auto error = direct ? decoder_.direct_received(n, sink)
                      : decoder_.feed(wire::ByteView(read_buffer_.data(), n), sink);
  if (!decoder_.direct_target().empty()) small_reads_ = true;
  if (!error) return std::nullopt;
  const std::string name(wire::wire_error_name(*error));
  // The owner reports the closing, with this reason, in one line.
  log::debug("{}: protocol error: {}; closing the connection", peer_name_, name);
  // A peer of another protocol version learns which one this side speaks.
  const bool version = *error == wire::WireError::UnsupportedVersion;
  return Failure{fmt::format("protocol error: {} ({})", name, wire::wire_error_description(*error)),
                 wire::Error{0, version ? wire::error_code::kNotSupported : wire::error_code::kIo,
                             version ? "protocol version not supported (this side speaks version 1)"
                                     : "protocol error: " + name}};
}

}  // namespace usbnet::transport
