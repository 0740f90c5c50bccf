#include "transport/frame_writer.h"

#include <sys/socket.h>
#include <sys/uio.h>

#include <algorithm>
#include <array>
#include <cerrno>

#if defined(__SANITIZE_THREAD__)
// ThreadSanitizer's dynamic annotations (libtsan exports them; GCC 12 ships no header for them).
extern "C" void AnnotateIgnoreReadsBegin(const char* file, int line);
extern "C" void AnnotateIgnoreReadsEnd(const char* file, int line);
#endif

namespace usbnet::transport {

namespace {

// sendmsg(), non-blocking. Under ThreadSanitizer its reads of the frames are not recorded: TSan
// marks the bytes read when the call returns, not when the kernel copied them, and by then the
// peer may have received them and answered, and the program may be refilling the buffer for its
// next transfer. TSan cannot see that order, which goes through the other process.
ssize_t send_frames(int fd, const msghdr& msg) {
#if defined(__SANITIZE_THREAD__)
  AnnotateIgnoreReadsBegin(__FILE__, __LINE__);
  const ssize_t n = ::sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
  const int error = errno;
  AnnotateIgnoreReadsEnd(__FILE__, __LINE__);
  errno = error;
  return n;
#else
  return ::sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
#endif
}

constexpr std::size_t kMaxIovecs = 64;
// Payload pieces per write: up to this many bytes, so that a large transfer costs a few system
// calls (and wakes its reader a few times) rather than one per piece. A frame queued meanwhile
// goes out before the pieces of the next write; the kernel holds at most about two pieces of
// unsent data (TCP_NOTSENT_LOWAT), so the wait it adds stays short.
constexpr std::size_t kPieceBatchBytes = 256 * 1024;

}  // namespace

FrameWriter::FrameWriter(int fd, std::uint32_t piece_size, Owner& owner)
    : fd_(fd), piece_size_(piece_size), owner_(owner), last_write_ns_(now_ns()) {}

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
  auto drop = [&](FrameQueue& queue) {
    std::erase_if(queue, [&](const QueuedFrame& f) {
      if (f.trans_id != trans_id) return false;
      (f.urb_head ? head_dropped : pieces_dropped) = true;
      return true;
    });
  };
  drop(urgent_);
  drop(ready_pieces_);
  pieces_dropped |=
      std::erase_if(streams_, [&](const PayloadStream& s) { return s.trans_id == trans_id; }) > 0;
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
  // A writer at work sends the held frames too; a blocked socket sends them when it has room.
  if (writing_ || blocked_ || closed_) return;
  if (urgent_.size() == 1 && ready_pieces_.empty() && streams_.empty() &&
      partial_offset_ == partial_.size()) {
    // One frame (a single answer to what was read): the short way.
    QueuedFrame frame = std::move(urgent_.front());
    urgent_.pop_front();
    return write_alone(std::move(frame), lock);
  }
  writing_ = true;
  flush(lock);
}

void FrameWriter::write_when_room() {
  Lock lock(mutex_);
  if (!blocked_ || writing_ || closed_) return;
  blocked_ = false;
  writing_ = true;
  flush(lock);
}

bool FrameWriter::idle() {
  std::lock_guard lock(mutex_);
  return idle_locked();
}

bool FrameWriter::idle_locked() const {
  return !writing_ && !blocked_ && urgent_.empty() && ready_pieces_.empty() && streams_.empty() &&
         partial_offset_ == partial_.size();
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
// the lock during sendmsg() and leaves whatever the kernel did not take (and whatever other
// threads queued meanwhile) to flush().
void FrameWriter::write_alone(QueuedFrame frame, Lock& lock) {
  writing_ = true;
  std::array<iovec, 2> iov{
      iovec{frame.head.data(), frame.head.size()},
      iovec{const_cast<std::uint8_t*>(frame.payload.data()), frame.payload.size()}};
  msghdr msg{};
  msg.msg_iov = iov.data();
  msg.msg_iovlen = frame.payload.empty() ? 1 : 2;
  in_syscall_ = true;
  lock.unlock();
  const ssize_t n = send_frames(fd_, msg);
  const int error = errno;
  lock.lock();
  in_syscall_ = false;
  syscall_done_.notify_all();
  if (n == static_cast<ssize_t>(frame.size())) {
    last_write_ns_ = now_ns();
    if (urgent_.empty() && streams_.empty()) return finished(lock);
  } else if (n > 0) {
    // The kernel took part of it: the rest goes first, from a copy (as in consume()).
    last_write_ns_ = now_ns();
    urgent_.push_front(std::move(frame));
    consume(static_cast<std::size_t>(n), {1, 0});
  } else if (error != EAGAIN && error != EWOULDBLOCK && error != EINTR) {
    urgent_.push_front(std::move(frame));
    writing_ = false;
    owner_.write_failed(error);
    return;
  } else {
    urgent_.push_front(std::move(frame));  // flush() retries, or waits for room
  }
  flush(lock);
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
    ready_pieces_.push_back(std::move(frame));
    if (stream.splitter.done()) {
      streams_.pop_front();
    } else if (streams_.size() > 1) {
      streams_.push_back(std::move(stream));
      streams_.pop_front();
    }
  }
}

// Writes until the queues are empty or the socket is full (then sets blocked_). Called with the
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
    if (count == 0) break;
    msghdr msg{};
    msg.msg_iov = iov.data();
    msg.msg_iovlen = count;
    in_syscall_ = true;
    lock.unlock();
    const ssize_t n = send_frames(fd_, msg);
    const int error = errno;
    lock.lock();
    if (n > 0) consume(static_cast<std::size_t>(n), batch);
    in_syscall_ = false;
    syscall_done_.notify_all();
    if (n >= 0) {
      last_write_ns_ = now_ns();
      continue;
    }
    if (error == EINTR) continue;
    writing_ = false;
    if (error == EAGAIN || error == EWOULDBLOCK) {
      blocked_ = true;
      owner_.wait_for_room();
    } else {
      owner_.write_failed(error);
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

// Drops what the kernel took of the batch: `partial_` first, then the batch's frames; the frame
// it took only part of leaves its remainder in `partial_`.
void FrameWriter::consume(std::size_t n, std::array<std::size_t, 2> batch) {
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
      // The kernel took `n` bytes of this frame: keep a copy of the rest.
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
