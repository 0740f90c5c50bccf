// A usbnet connection as a framed stream over a byte channel: frame assembly, payload pieces
// interleaved with small frames, heartbeats and dead-peer timing, large URB payloads read
// straight into their destination. It owns no thread and no timer: a driver runs it (as
// usbredir's parser is driven by the program's loop), waiting on the channel's descriptor as
// interest() asks and calling readable(), writable() and tick(). Drivers: asio_connection.h (the
// agent's io thread, the client's), and the shim's event loop, which borrows the stream from the
// client's io thread while it waits for the agent anyway.
//
// Sending is thread-safe: a sender whose frame finds the channel idle writes it itself, at once,
// without a thread hop; otherwise the frame waits in the queue and whoever is writing sends it.
// When the channel is full, the rest waits until the driver calls writable(). Small messages go
// before payload pieces, so a control URB waits for at most one piece of a large transfer.
// Between cork() and uncork() a thread's frames are held and go out in one write.
//
// Reading is one thread at a time (a second readable() waits for the first): messages reach the
// handler on the thread that reads. A frame the decoder rejects closes the stream with a reason,
// after telling the peer why.
//
// Closing: close() (any thread, or the stream itself: a protocol error, a failed write, a silent
// peer) marks the stream closing and wakes the driver, which stops waiting on the channel and
// calls finish_close() on its thread: the handler's on_closed runs there, once.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include "transport/byte_channel.h"
#include "usbnet/messages.h"
#include "usbnet/stream_decoder.h"

namespace usbnet::transport {

struct StreamOptions {
  std::chrono::milliseconds heartbeat{5000};    // send a heartbeat after this long idle
  std::chrono::milliseconds dead_after{15000};  // close when the peer is silent this long
  std::uint32_t piece_size = wire::kDefaultPieceSize;
  std::string peer_name;  // for log lines ("127.0.0.1:51234")
  // Non-zero: until admit(), frames longer than this are a protocol error (frame too large) and
  // input is read through a small buffer, so that a peer that has not introduced itself costs
  // a few KiB (the agent: until the client's HELLO).
  std::uint32_t frame_limit_until_admitted = 0;
};

// What a stream delivers to: the messages (wire::MessageSink, called by the thread in
// readable(), never by two at once; payload views are valid during the call only), and the end.
class StreamHandler : public wire::MessageSink {
 public:
  // The stream is closed (by either side, by an error, by a protocol violation or by silence):
  // called once, from finish_close(), after which the stream calls the handler no more.
  virtual void on_closed(const std::string& reason) = 0;

  // Backpressure: a driver reads the peer only while this is true. It asks before each read
  // and after each read and write it performs (a write is what lowers queued_bytes()); a
  // handler whose answer turns true for another reason calls FramedStream::input_wanted().
  // Called on the driver's thread.
  virtual bool wants_input() const { return true; }

  // The channel's handshake is done (a TLS peer's key is known now). Called on the driver's
  // thread, once, before any message.
  virtual void on_handshake_done() {}
};

// What a stream needs from whoever drives it.
class StreamDriver {
 public:
  virtual ~StreamDriver() = default;
  // The driver must look at the stream again: frames wait for room (interest().writing), the
  // handler wants input again, a deadline came closer, or the stream is closing (closing()).
  // Called from any thread, possibly with the stream's locks held: it only schedules work, and
  // never calls the stream from inside.
  virtual void wake() = 0;
};

// What the driver waits for on the channel's descriptor, and what it calls then.
struct Interest {
  Readiness reading = kNoReadiness;  // wait for this, then readable() (none: do not read)
  Readiness writing = kNoReadiness;  // frames wait for room: wait for this, then writable()
  bool now = false;  // call readable() without waiting: the channel holds input already
};

// What became of a URB's frames when its sender withdrew them (see FramedStream::withdraw).
enum class Withdrawn {
  NotSent,      // nothing of the URB had been written: the peer never saw it
  PartlySent,   // its header was written but payload pieces were dropped
  AlreadySent,  // everything was already written (or it was never queued)
};

class FramedStream {
 public:
  // The handler and the driver must outlive the stream's calls to them (the handler: until
  // on_closed; the driver: the stream's life).
  FramedStream(std::unique_ptr<ByteChannel> channel, StreamOptions options, StreamHandler& handler,
               StreamDriver& driver);
  ~FramedStream();
  FramedStream(const FramedStream&) = delete;
  FramedStream& operator=(const FramedStream&) = delete;

  // ---- sending (any thread) ----------------------------------------------------------------

  // Queues a message (or writes it at once); its payload, if any, is copied. False once the
  // stream is closed.
  bool send(const wire::Message& message);
  // Queues a URB_SUBMIT or URB_COMPLETE whose payload view is the WHOLE payload: it is split
  // into pieces, and the bytes are not copied. `keepalive` is held until the bytes are written;
  // a sender that passes none guarantees that the payload outlives the frames, and must call
  // withdraw() before the payload dies if they may not have been written.
  bool send_urb(wire::Message urb, std::shared_ptr<const void> keepalive);
  // Removes whatever of `trans_id`'s frames is still queued. After it returns the stream holds
  // no reference to that URB's payload.
  Withdrawn withdraw(std::uint32_t trans_id);
  // Batching: between cork() and uncork(), frames this thread sends are queued and go out
  // together at uncork() (one write for a burst of completions or resubmissions). Other
  // threads' frames are not held back. Nested calls are counted.
  void cork();
  void uncork();
  // Bytes of frames waiting to be written: what a peer that does not read makes this side hold.
  std::size_t queued_bytes() const;

  // ---- the connection (any thread) -----------------------------------------------------------

  // Adopts the peer's heartbeat interval from its HELLO: the peer is dead after three of them
  // without a frame (0 keeps the configured bound).
  void set_peer_heartbeat(std::chrono::milliseconds interval);
  // Closes the stream (see the top). Later calls do nothing.
  void close(const std::string& reason);
  // Closes once every frame queued so far is written, or after `grace` anyway.
  void close_when_sent(const std::string& reason, std::chrono::milliseconds grace);
  // The handler's wants_input() has turned true: the driver reads again.
  void input_wanted();
  // Lifts frame_limit_until_admitted. Only from the handler's on_message (the reading thread).
  void admit();
  const std::string& peer_name() const;

  // ---- driving (drivers only) ----------------------------------------------------------------

  // The descriptor to wait on; valid (shut down, not closed) as long as the stream exists.
  int pollable_fd() const;
  // Takes the channel's first handshake step; the driver calls it once, before anything else.
  void start();
  Interest interest() const;
  // The descriptor is as interest().reading asked (or interest().now): reads and delivers what
  // has arrived (up to a bounded amount), and advances the handshake.
  void readable();
  // The descriptor is as interest().writing asked: writes what waited for room.
  void writable();
  // Sends a heartbeat when this side has been quiet for the interval, closes when the peer has
  // been silent too long or a drain (close_when_sent) has run out of time.
  void tick(std::chrono::steady_clock::time_point now);
  // When tick() has something to do next.
  std::chrono::steady_clock::time_point next_deadline() const;
  // close() was called (or the stream failed): the driver stops waiting and calls
  // finish_close().
  bool closing() const;
  // Drops what is queued, shuts the channel down and calls the handler's on_closed (once).
  void finish_close();

 private:
  class Impl;
  const std::unique_ptr<Impl> impl_;
};

}  // namespace usbnet::transport
