#include "transport/frame_writer.h"

#include <algorithm>
#include <array>

namespace usbnet::transport {

namespace {

constexpr std::size_t kMaxIovecs = 64;
// Payload pieces per write: up to this many bytes, so that a large transfer costs a few system
// calls (and wakes its reader a few times) rather than one per piece. A frame queued meanwhile
// goes out before the pieces of the next write; the kernel holds at most about two pieces of
// unsent data (TCP_NOTSENT_LOWAT), so the wait it adds stays short.
constexpr std::size_t kPieceBatchBytes = 256 * 1024;

}  // namespace

FrameWriter::FrameWriter(ByteChannel& channel, std::uint32_t piece_size, Owner& owner)
    : channel_(channel), piece_size_(piece_size), owner_(owner), last_write_ns_(now_ns()) {}

bool FrameWriter::send(const wire::Message& message) {
  QueuedFrame frame;
  const wire::ByteView payload = wire::encode_frame_head(message, frame.head);
  frame.head.insert(frame.head.end(), payload.data(), payload.data() + payload.size());
  return enqueue(std::move(frame), std::nullopt);
}

bool FrameWriter::send_urb(wire::Message urb, std::shared_ptr<const void> keepalive) {
  wire::ByteView whole;
  std::uint32_t trans_id = 0;
  wire::Message& head = urb;
  if (auto* submit = std::get_if<wire::UrbSubmit>(&head)) {
    whole = submit->payload;
    trans_id = submit->trans_id;
  } else if (auto* complete = std::get_if<wire::UrbComplete>(&head)) {
    whole = complete->payload;
    trans_id = complete->trans_id;
  } else {
    return send(head);
  }
  wire::PieceSplitter splitter(whole, piece_size_);
  std::visit(
      [&](auto& m) {
        if constexpr (requires { m.payload; }) m.payload = splitter.inline_part();
      },
      head);
  QueuedFrame frame{{}, {}, keepalive, trans_id, true};
  frame.payload = wire::encode_frame_head(head, frame.head);
  std::optional<PayloadStream> stream;
  if (!splitter.done()) stream.emplace(PayloadStream{trans_id, splitter, std::move(keepalive)});
  return enqueue(std::move(frame), std::move(stream));
}

bool FrameWriter::send_heartbeat() {
  QueuedFrame heartbeat;
  const auto zeros = wire::heartbeat_frame();
  heartbeat.head.insert(heartbeat.head.end(), zeros.data(), zeros.data() + zeros.size());
  return enqueue(std::move(heartbeat), std::nullopt);
}

Withdrawn FrameWriter::withdraw(std::uint32_t trans_id) {
  Lock lock(mutex_);
  syscall_done_.wait(lock, [this] { return !in_syscall_; });
  bool head_dropped = false;
  bool pieces_dropped = false;
  std::size_t dropped = 0;
  auto drop = [&](FrameQueue& queue) {
    std::erase_if(queue, [&](const QueuedFrame& f) {
      if (f.trans_id != trans_id) return false;
      (f.urb_head ? head_dropped : pieces_dropped) = true;
      dropped += f.size();
      return true;
    });
  };
  drop(urgent_);
  drop(ready_pieces_);
  pieces_dropped |= std::erase_if(streams_, [&](const PayloadStream& s) {
                      if (s.trans_id != trans_id) return false;
                      dropped += s.splitter.remaining();
                      return true;
                    }) > 0;
  count_queued(0, dropped);
  if (head_dropped) return Withdrawn::NotSent;
  return pieces_dropped ? Withdrawn::PartlySent : Withdrawn::AlreadySent;
}

void FrameWriter::cork() {
  if (corks_.fetch_add(1, std::memory_order_acq_rel) == 0) {
    cork_owner_.store(std::this_thread::get_id(), std::memory_order_release);
  }
}

void FrameWriter::uncork() {
  if (corks_.fetch_sub(1, std::memory_order_seq_cst) != 1) return;
  if (!held_.load(std::memory_order_seq_cst)) return;
  Lock lock(mutex_);
  held_ = false;
  // A writer at work sends the held frames too; a blocked channel sends them when it has room.
  if (writing_ || blocked_ || closed_) return;
  if (urgent_.size() == 1 && ready_pieces_.empty() && streams_.empty() &&
      partial_offset_ == partial_.size()) {
    // One frame (a single answer to what was read): the short way.
    QueuedFrame frame = std::move(urgent_.front());
    urgent_.pop_front();
    count_queued(0, frame.size());
    return write_alone(std::move(frame), lock);
  }
  writing_ = true;
  flush(lock);
}

void FrameWriter::open() { write_when_room(); }

void FrameWriter::write_when_room() {
  Lock lock(mutex_);
  if (!blocked_ || writing_ || closed_) return;
  blocked_ = false;
  room_readiness_ = kNoReadiness;
  writing_ = true;
  flush(lock);
}

void FrameWriter::count_queued(std::size_t added, std::size_t removed) {
  queued_bytes_.store(queued_bytes_.load(std::memory_order_relaxed) + added - removed,
                      std::memory_order_relaxed);
}

bool FrameWriter::idle() {
  std::lock_guard lock(mutex_);
  return idle_locked();
}

bool FrameWriter::idle_locked() const {
  return !writing_ && !blocked_ && urgent_.empty() && ready_pieces_.empty() && streams_.empty() &&
         partial_offset_ == partial_.size() && !channel_.has_pending_output();
}

void FrameWriter::close() {
  Lock lock(mutex_);
  syscall_done_.wait(lock, [this] { return !in_syscall_; });
  closed_ = true;
  urgent_.clear();
  ready_pieces_.clear();
  streams_.clear();
  partial_.clear();
  partial_offset_ = 0;
  queued_bytes_ = 0;
}

bool FrameWriter::enqueue(QueuedFrame frame, std::optional<PayloadStream> stream) {
  Lock lock(mutex_);
  if (closed_) return false;
  const bool corked = corks_.load(std::memory_order_acquire) > 0;
  if (!stream && !corked && idle_locked()) {
    // Nothing ahead of it and nobody writing: out at once, without passing through the queue.
    write_alone(std::move(frame), lock);
    return true;
  }
  count_queued(frame.size() + (stream ? stream->splitter.remaining() : 0), 0);
  urgent_.push_back(std::move(frame));
  if (stream) streams_.push_back(std::move(*stream));
  if (writing_ || blocked_) return true;
  if (corked && cork_owner_.load(std::memory_order_acquire) == std::this_thread::get_id()) {
    // Goes out at uncork(). The owner is read without the count, so it may be stale (this
    // thread's own earlier cork) while another thread's cork ends: held_ is set before the count
    // is read again, and uncork() reads held_ after lowering the count, so one of the two sends.
    held_.store(true, std::memory_order_seq_cst);
    if (corks_.load(std::memory_order_seq_cst) > 0) return true;
  }
  writing_ = true;
  flush(lock);
  return true;
}

// Sends `frame` while no other frame is queued or being written (the common case of a request
// or a completion on an idle connection). Called with the lock held; like flush(), it releases
// the lock during the write and leaves whatever the channel did not take (and whatever other
// threads queued meanwhile) to flush().
void FrameWriter::write_alone(QueuedFrame frame, Lock& lock) {
  writing_ = true;
  const std::array<iovec, 2> iov{
      iovec{frame.head.data(), frame.head.size()},
      iovec{const_cast<std::uint8_t*>(frame.payload.data()), frame.payload.size()}};
  in_syscall_ = true;
  lock.unlock();
  IoResult result = channel_.write(std::span(iov).first(frame.payload.empty() ? 1 : 2));
  lock.lock();
  in_syscall_ = false;
  syscall_done_.notify_all();
  const std::size_t n = result.status == IoResult::Status::Done ? result.bytes : 0;
  if (n == frame.size()) {
    last_write_ns_ = now_ns();
    if (urgent_.empty() && streams_.empty() && !channel_.has_pending_output()) {
      return finished(lock);
    }
    return flush(lock);
  }
  // The rest goes first: from a copy, if the channel took part of it (as in consume()).
  count_queued(frame.size(), 0);
  urgent_.push_front(std::move(frame));
  if (n > 0) {
    last_write_ns_ = now_ns();
    consume(n, {1, 0});
  } else if (result.status == IoResult::Status::Failed) {
    writing_ = false;
    owner_.write_failed(result.error);
    return;
  }
  flush(lock);  // retries, or waits for room
}

// Moves a few pieces from the streams into ready_pieces_, round-robin, when nothing more urgent
// is waiting.
void FrameWriter::take_pieces() {
  std::size_t bytes = 0;
  for (std::size_t i = 0;
       2 * (i + 1) < kMaxIovecs && bytes < kPieceBatchBytes && !streams_.empty() && urgent_.empty();
       ++i) {
    PayloadStream& stream = streams_.front();
    const wire::UrbData piece = stream.splitter.next_piece(stream.trans_id);
    QueuedFrame frame{{}, {}, stream.keepalive, stream.trans_id, false};
    frame.payload = wire::encode_frame_head(piece, frame.head);
    bytes += frame.size();
    count_queued(frame.head.size(), 0);  // its payload was counted with the stream
    ready_pieces_.push_back(std::move(frame));
    if (stream.splitter.done()) {
      streams_.pop_front();
    } else if (streams_.size() > 1) {
      streams_.push_back(std::move(stream));
      streams_.pop_front();
    }
  }
}

// Writes until the queues are empty or the channel is full (then sets blocked_). Called with the
// lock held and writing_ set; clears writing_.
void FrameWriter::flush(Lock& lock) {
  while (!closed_) {
    if (urgent_.empty() && ready_pieces_.empty()) take_pieces();
    std::array<iovec, kMaxIovecs> iov;
    std::size_t count = 0;
    auto add = [&](const void* data, std::size_t size) {
      if (size > 0) iov[count++] = {const_cast<void*>(data), size};
    };
    add(partial_.data() + partial_offset_, partial_.size() - partial_offset_);
    std::array<std::size_t, 2> batch{0, 0};  // frames of urgent_ and ready_pieces_ included
    const std::array<const FrameQueue*, 2> queues{&urgent_, &ready_pieces_};
    for (std::size_t q = 0; q < queues.size(); ++q) {
      for (const QueuedFrame& f : *queues[q]) {
        if (count + 2 > kMaxIovecs) break;
        add(f.head.data(), f.head.size());
        add(f.payload.data(), f.payload.size());
        ++batch[q];
      }
    }
    // Nothing queued: done, unless the channel still holds output, which an empty write
    // pushes on.
    if (count == 0 && !channel_.has_pending_output()) break;
    in_syscall_ = true;
    lock.unlock();
    IoResult result = channel_.write(std::span(iov).first(count));
    lock.lock();
    if (result.status == IoResult::Status::Done) consume(result.bytes, batch);
    in_syscall_ = false;
    syscall_done_.notify_all();
    if (result.status == IoResult::Status::Done) {
      last_write_ns_ = now_ns();
      continue;
    }
    writing_ = false;
    if (result.status == IoResult::Status::WouldBlock) {
      room_readiness_ = result.wait_for;
      blocked_ = true;
      owner_.wait_for_room();
    } else {
      owner_.write_failed(result.error.empty() ? "the channel is closed" : result.error);
    }
    return;
  }
  finished(lock);
}

// The queues are empty: nobody writes any more.
void FrameWriter::finished(Lock&) {
  writing_ = false;
  held_ = false;
  if (draining_) owner_.drained();
}

// Drops what the channel took of the batch: `partial_` first, then the batch's frames; the frame
// it took only part of leaves its remainder in `partial_`.
void FrameWriter::consume(std::size_t n, std::array<std::size_t, 2> batch) {
  count_queued(0, n);
  const std::size_t from_partial = std::min(n, partial_.size() - partial_offset_);
  partial_offset_ += from_partial;
  n -= from_partial;
  if (partial_offset_ == partial_.size()) {
    partial_.clear();
    partial_offset_ = 0;
  }
  const std::array<FrameQueue*, 2> queues{&urgent_, &ready_pieces_};
  for (std::size_t q = 0; q < queues.size() && n > 0; ++q) {
    FrameQueue& queue = *queues[q];
    for (; batch[q] > 0 && n > 0; --batch[q]) {
      QueuedFrame& f = queue.front();
      if (n >= f.size()) {
        n -= f.size();
        queue.pop_front();
        continue;
      }
      // The channel took `n` bytes of this frame: keep a copy of the rest.
      wire::Bytes rest;
      rest.reserve(f.size() - n);
      if (n < f.head.size()) {
        rest.insert(rest.end(), f.head.begin() + static_cast<std::ptrdiff_t>(n), f.head.end());
        rest.insert(rest.end(), f.payload.begin(), f.payload.end());
      } else {
        rest.insert(rest.end(), f.payload.begin() + static_cast<std::ptrdiff_t>(n - f.head.size()),
                    f.payload.end());
      }
      partial_ = std::move(rest);
      partial_offset_ = 0;
      queue.pop_front();
      n = 0;
    }
  }
}

}  // namespace usbnet::transport
