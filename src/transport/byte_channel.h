// The byte channel under a framed stream: the one seam between the protocol and the network.
// Plain TCP implements it (tcp_channel.h); so can TLS, which is why its contract is shaped the
// way a non-blocking TLS connection behaves:
//
//  - every call is non-blocking: it moves what it can and says WouldBlock when it can do nothing
//    more now, naming the readiness of the descriptor that would let it go on (a TLS read may
//    need the descriptor writable, a TLS write may need it readable);
//  - a channel may hold input already (decrypted bytes) while its descriptor is not readable:
//    has_buffered_input() says so, and the driver reads again without waiting;
//  - a handshake precedes the data: until handshake() says Done, the stream sends nothing;
//  - a write may leave output inside the channel (the tail of an encrypted record the kernel
//    did not take): has_pending_output() says so, and the writer writes again, with no buffers
//    if it has nothing more, once the descriptor is as the WouldBlock said.
//
// Threads: one thread may read while another writes (a reader and the sender of the moment);
// a channel that cannot do both at once (TLS) serializes them inside. handshake() and shutdown()
// are called with no read or write in progress.
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

namespace usbnet::transport {

// Readiness of the channel's descriptor, as bits (what poll() calls POLLIN and POLLOUT).
enum Readiness : unsigned {
  kNoReadiness = 0,
  kReadable = 1,
  kWritable = 2,
};

struct IoResult {
  enum class Status {
    Done,        // `bytes` moved (a handshake: finished)
    WouldBlock,  // nothing can move until the descriptor is `wait_for`
    Closed,      // the peer closed the channel (reads only)
    Failed,      // broken: `error` says why
  };
  Status status = Status::Done;
  std::size_t bytes = 0;
  Readiness wait_for = kNoReadiness;
  std::string error;

  static IoResult done(std::size_t n) { return {Status::Done, n, kNoReadiness, {}}; }
  static IoResult would_block(Readiness wait_for) { return {Status::WouldBlock, 0, wait_for, {}}; }
  static IoResult closed() { return {Status::Closed, 0, kNoReadiness, {}}; }
  static IoResult failed(std::string error) {
    return {Status::Failed, 0, kNoReadiness, std::move(error)};
  }
};

class ByteChannel {
 public:
  virtual ~ByteChannel() = default;

  // Advances the handshake; Done once data may flow (at once for plain TCP).
  virtual IoResult handshake() = 0;
  // Reads at most `into.size()` bytes (Done with at least one byte, or another status).
  virtual IoResult read(std::span<std::uint8_t> into) = 0;
  // Reads into `first` and, once it is full, on into `then`, in one go where the channel can (the
  // rest of a large payload and the head of the frame after it: one system call, not two). A
  // channel that cannot reads into `first` only.
  virtual IoResult read_into(std::span<std::uint8_t> first, std::span<std::uint8_t> /*then*/) {
    return read(first);
  }
  // Writes from the buffers in order, as much as the channel takes now (Done with the count).
  virtual IoResult write(std::span<const iovec> from) = 0;
  // Input the channel holds already, which a read returns without the descriptor being readable.
  virtual bool has_buffered_input() const = 0;
  // Output the channel has accepted but not yet handed to the descriptor (any thread).
  virtual bool has_pending_output() const { return false; }
  // Ends the channel in both directions: a thread waiting on the descriptor wakes up. The
  // descriptor stays valid (and its number taken) until the channel is destroyed.
  virtual void shutdown() = 0;

  // The descriptor drivers wait on (poll, epoll); only drivers use it.
  virtual int pollable_fd() const = 0;
};

}  // namespace usbnet::transport
