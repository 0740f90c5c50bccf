// The sending half of a framed stream: the queues of frames waiting for the channel, and the
// writes that empty them. Internal to the transport (see framed_stream.h for the contract).
//
// Frames wait in two queues, `urgent_` (every whole message, and the first piece of a URB) and
// `streams_` (the remaining pieces of large payloads). Whoever finds no writer active becomes
// the writer and writes to the channel: urgent frames first, then a few pieces taken
// round-robin from the streams. The mutex is released during each write, so that other
// threads can queue frames meanwhile (they go out in the next batch, ahead of any further
// piece); withdraw() and close() wait for the call to return, because the batch borrows payload
// bytes. When the channel is full the writer is `blocked_` and tells its owner, which arranges
// for write_when_room() once the channel has room. A frame the channel took only part of is
// copied (the remainder only) into `partial_`, so that queued frames are the only references to
// borrowed payloads and withdraw() can always drop them.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "transport/byte_channel.h"
#include "transport/framed_stream.h"
#include "transport/now_ns.h"
#include "usbnet/frame_head.h"
#include "usbnet/pieces.h"

namespace usbnet::transport {

class FrameWriter {
 public:
  // What the writer needs from its stream. Called with the writer's lock held: they only
  // schedule work, and never call the writer.
  class Owner {
   public:
    virtual ~Owner() = default;
    // The channel is full: write_when_room() once it is `room_readiness()` (`blocked()` says so
    // until then).
    virtual void wait_for_room() = 0;
    // The channel failed (`error` says why): the stream is broken.
    virtual void write_failed(const std::string& error) = 0;
    // Everything queued is written, and notify_when_drained() was called.
    virtual void drained() = 0;
  };

  // Until open() the writer only queues (the channel's handshake is not done).
  FrameWriter(ByteChannel& channel, std::uint32_t piece_size, Owner& owner);

  // FramedStream::send, send_urb, withdraw, cork and uncork (see framed_stream.h).
  bool send(const wire::Message& message);
  bool send_urb(wire::Message urb, std::shared_ptr<const void> keepalive);
  // A heartbeat frame (length 0).
  bool send_heartbeat();
  Withdrawn withdraw(std::uint32_t trans_id);
  void cork();
  void uncork();

  // The channel may take data: writes what waited for the handshake.
  void open();
  // The channel has room again: writes what waited for it.
  void write_when_room();
  bool blocked() const { return blocked_.load(); }
  // While blocked: the readiness of the descriptor the channel waits for.
  Readiness room_readiness() const { return room_readiness_.load(); }
  // Bytes of frames waiting to be written (payload pieces not yet cut included).
  std::size_t queued_bytes() const { return queued_bytes_.load(); }
  // Nothing is queued or being written.
  bool idle();
  // From now on, owner.drained() is called whenever the queues become empty.
  void notify_when_drained() { draining_ = true; }
  // Drops everything queued (after a write in progress has returned); later sends fail.
  void close();
  std::int64_t last_write_ns() const { return last_write_ns_.load(); }

 private:
  struct QueuedFrame {
    wire::FrameHead head;  // inline: no allocation for the usual frames
    wire::ByteView payload;
    std::shared_ptr<const void> keepalive;
    std::uint32_t trans_id = 0;  // URB frames only, for withdraw()
    bool urb_head = false;       // the URB_SUBMIT / URB_COMPLETE itself

    std::size_t size() const { return head.size() + payload.size(); }
  };
  struct PayloadStream {
    std::uint32_t trans_id;
    wire::PieceSplitter splitter;
    std::shared_ptr<const void> keepalive;
  };
  // A deque, not a vector: flush() hands the channel pointers into queued frames (their inline
  // heads) and releases the lock during the write, while other threads append frames; a deque
  // never moves its elements on push_back or push_front.
  using FrameQueue = std::deque<QueuedFrame>;
  using Lock = std::unique_lock<std::mutex>;

  bool enqueue(QueuedFrame frame, std::optional<PayloadStream> stream);
  void write_alone(QueuedFrame frame, Lock& lock);
  void take_pieces();
  void flush(Lock& lock);
  void consume(std::size_t n, std::array<std::size_t, 2> batch);
  bool idle_locked() const;
  void finished(Lock& lock);

  void count_queued(std::size_t added, std::size_t removed);

  ByteChannel& channel_;
  const std::uint32_t piece_size_;
  Owner& owner_;
  std::atomic<std::int64_t> last_write_ns_;
  std::atomic<bool> draining_{false};

  // Corking takes no lock: a thread that corks, reads and uncorks without sending anything (a
  // client reading completions) pays two atomic operations. `held_` says that the corking thread
  // queued frames that the uncork must send.
  std::atomic<int> corks_{0};
  std::atomic<std::thread::id> cork_owner_;
  std::atomic<bool> held_{false};

  std::mutex mutex_;  // guards everything below
  FrameQueue urgent_;
  FrameQueue ready_pieces_;
  std::deque<PayloadStream> streams_;
  wire::Bytes partial_;
  std::size_t partial_offset_ = 0;
  bool writing_ = false;             // a thread is flushing
  std::atomic<bool> blocked_{true};  // the channel was full (or not open): the rest waits
  std::atomic<Readiness> room_readiness_{kNoReadiness};
  std::atomic<std::size_t> queued_bytes_{0};
  bool in_syscall_ = false;  // the writer is inside the channel's write with borrowed bytes
  std::condition_variable syscall_done_;
  bool closed_ = false;
};

}  // namespace usbnet::transport
