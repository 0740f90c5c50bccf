// Connection over a TCP socket. See connection.h for the contract.
//
// The writer: frames wait in two queues, `urgent_` (every whole message, and the first piece of
// a URB) and `streams_` (the remaining pieces of large payloads). Whoever finds no writer active
// becomes the writer and sends with non-blocking sendmsg() while holding the mutex: urgent
// frames first, then a few pieces taken round-robin from the streams. When the socket is full
// the connection is `blocked_`, and whoever serves the socket sends the rest when it has room:
// a claiming thread that polls for POLLOUT, or the io thread. A frame the kernel took only part
// of is copied (the remainder only) into `partial_`, so that queued frames are the only
// references to borrowed payloads and withdraw() can always drop them.
//
// The reader: the socket is a plain descriptor; the io thread watches it through `watcher_`, a
// reactor registration that exists only while the io thread serves the socket (always on the
// agent; on a client, only while no event loop claims the socket), because a registered socket
// wakes the io thread for every segment that arrives, whether or not it wants to read.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <poll.h>
#include <array>
#include <atomic>

#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
#include <thread>

#include "common/log.h"
#include "transport/connection.h"
#include "usbnet/pieces.h"
#include "usbnet/stream_decoder.h"
#include "wire/frame_head.h"

namespace usbnet::transport {

namespace asio = boost::asio;
using asio::ip::tcp;
using Clock = std::chrono::steady_clock;

namespace {

constexpr std::size_t kReadBufferSize = 1024 * 1024;
// The read after a large payload: enough for the heads of the frames that follow.
constexpr std::size_t kSmallRead = 4096;
constexpr std::size_t kMaxIovecs = 64;
// Payload pieces per write: up to this many bytes, so that a large transfer costs a few system
// calls (and wakes its reader a few times) rather than one per piece. A frame queued meanwhile
// goes out before the pieces of the next write; the kernel holds at most about two pieces of
// unsent data (TCP_NOTSENT_LOWAT), so the wait it adds stays short.
constexpr std::size_t kPieceBatchBytes = 256 * 1024;
// A client's io thread takes the socket back when no event loop has claimed it for this long.
constexpr std::chrono::milliseconds kClaimQuiet{10};

std::int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

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

class TcpConnection final : public Connection,
                            public std::enable_shared_from_this<TcpConnection>,
                            private wire::MessageSink {
 public:
  TcpConnection(tcp::socket socket, std::shared_ptr<ConnectionHandler> handler,
                ConnectionOptions options)
      : executor_(socket.get_executor()),
        fd_(socket.release()),  // out of the reactor: see take_duty()
        handler_(std::move(handler)),
        options_(std::move(options)),
        timer_(executor_),
        park_timer_(executor_),
        watcher_(executor_),
        read_buffer_(kReadBufferSize),
        dead_after_ms_(options_.dead_after.count()) {
    options_.piece_size = wire::clamp_piece_size(options_.piece_size);
    configure_socket();
    last_read_ns_ = last_write_ns_ = now_ns();
  }

  ~TcpConnection() override {
    if (registered_) watcher_.release();
    ::close(fd_);
  }

  void start() override {
    asio::post(executor_, [self = shared_from_this()] { self->take_duty(); });
    arm_timer();
  }

  bool send(const wire::Message& message) override {
    QueuedFrame frame;
    const wire::ByteView payload = wire::encode_frame_head(message, frame.head);
    frame.head.insert(frame.head.end(), payload.data(), payload.data() + payload.size());
    return enqueue(std::move(frame), std::nullopt);
  }

  bool send_urb(wire::Message urb, std::shared_ptr<const void> keepalive) override {
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
    wire::PieceSplitter splitter(whole, options_.piece_size);
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

  Withdrawn withdraw(std::uint32_t trans_id) override {
    std::unique_lock lock(mutex_);
    syscall_done_.wait(lock, [this] { return !in_syscall_; });
    bool head_dropped = false;
    bool pieces_dropped = false;
    auto drop = [&](std::deque<QueuedFrame>& queue) {
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

  void set_peer_heartbeat(std::chrono::milliseconds interval) override {
    if (interval.count() > 0) dead_after_ms_ = 3 * interval.count();
  }

  void close(const std::string& reason) override {
    // Posted, never run inline: the caller may be a message handler, up the stack from a read.
    asio::post(executor_, [self = shared_from_this(), reason] { self->do_close(reason); });
  }

  void close_when_sent(const std::string& reason, std::chrono::milliseconds grace) override {
    asio::post(executor_, [self = shared_from_this(), reason, grace] {
      if (!self->handler_) return;
      self->drain_reason_ = reason;
      self->draining_ = true;
      self->timer_.expires_after(grace);
      self->timer_.async_wait([self](const boost::system::error_code& ec) {
        if (!ec) self->do_close(self->drain_reason_);
      });
      self->close_if_drained();
    });
  }

  bool is_open() const override { return open_.load(); }
  const std::string& peer_name() const override { return options_.peer_name; }

 private:
  void configure_socket() {
    const int one = 1;
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    // Keep at most about one piece unsent in the kernel, so that a small frame queued behind
    // a large payload waits for one piece rather than for a whole socket buffer.
    const int lowat = static_cast<int>(2 * options_.piece_size);
    ::setsockopt(fd_, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &lowat, sizeof lowat);
    if (peer_is_loopback()) {
      // No congestion to control on loopback, and a model-based controller (BBR, a common
      // default) paces a long-lived, application-limited connection at whatever rate it last
      // estimated, with a timer per segment: measured here, async bulk IN fell from 7.7 to
      // 2.6-3.6 GB/s on one connection after a phase of 1 MiB transfers. Reno, which every
      // kernel offers to unprivileged programs, neither models nor paces.
      static constexpr char kReno[] = "reno";
      ::setsockopt(fd_, IPPROTO_TCP, TCP_CONGESTION, kReno, sizeof kReno - 1);
    }
    ::fcntl(fd_, F_SETFD, FD_CLOEXEC);
    ::fcntl(fd_, F_SETFL, ::fcntl(fd_, F_GETFL) | O_NONBLOCK);
  }

  bool peer_is_loopback() const {
    sockaddr_storage peer{};
    socklen_t length = sizeof peer;
    if (::getpeername(fd_, reinterpret_cast<sockaddr*>(&peer), &length) != 0) return false;
    if (peer.ss_family == AF_INET) {
      const auto& a = reinterpret_cast<const sockaddr_in&>(peer);
      return (ntohl(a.sin_addr.s_addr) >> 24) == 127;
    }
    if (peer.ss_family == AF_INET6) {
      const auto& a = reinterpret_cast<const sockaddr_in6&>(peer);
      if (IN6_IS_ADDR_LOOPBACK(&a.sin6_addr)) return true;
      return IN6_IS_ADDR_V4MAPPED(&a.sin6_addr) && a.sin6_addr.s6_addr[12] == 127;
    }
    return false;
  }

  // ---- writing -------------------------------------------------------------------------

  bool enqueue(QueuedFrame frame, std::optional<PayloadStream> stream) {
    std::unique_lock lock(mutex_);
    if (closed_) return false;
    if (!stream && !writing_ && !blocked_ && corks_ == 0 && urgent_.empty() &&
        ready_pieces_.empty() && streams_.empty() && partial_offset_ == partial_.size()) {
      // Nothing ahead of it and nobody writing: out at once, without passing through the queue.
      write_alone(std::move(frame), lock);
      return true;
    }
    urgent_.push_back(std::move(frame));
    if (stream) streams_.push_back(std::move(*stream));
    if (writing_ || blocked_ || (corks_ > 0 && cork_owner_ == std::this_thread::get_id())) {
      return true;
    }
    writing_ = true;
    flush(lock);
    return true;
  }

  // Sends `frame` while no other frame is queued or being written (the common case of a
  // request or a completion on an idle connection). Called with the lock held; like flush(), it
  // releases the lock during sendmsg() and leaves whatever the kernel did not take (and whatever
  // other threads queued meanwhile) to flush().
  void write_alone(QueuedFrame frame, std::unique_lock<std::mutex>& lock) {
    writing_ = true;
    std::array<iovec, 2> iov{
        iovec{frame.head.data(), frame.head.size()},
        iovec{const_cast<std::uint8_t*>(frame.payload.data()), frame.payload.size()}};
    msghdr msg{};
    msg.msg_iov = iov.data();
    msg.msg_iovlen = frame.payload.empty() ? 1 : 2;
    in_syscall_ = true;
    lock.unlock();
    const ssize_t n = ::sendmsg(fd_, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
    const int error = errno;
    lock.lock();
    in_syscall_ = false;
    syscall_done_.notify_all();
    if (n == static_cast<ssize_t>(frame.size())) {
      last_write_ns_ = now_ns();
      if (urgent_.empty() && streams_.empty()) {
        writing_ = false;
        if (draining_) {
          asio::post(executor_, [self = shared_from_this()] { self->close_if_drained(); });
        }
        return;
      }
    } else if (n > 0) {
      // The kernel took part of it: the rest goes first, from a copy (as in consume()).
      last_write_ns_ = now_ns();
      urgent_.push_front(std::move(frame));
      consume(static_cast<std::size_t>(n), {1, 0});
    } else if (error != EAGAIN && error != EWOULDBLOCK && error != EINTR) {
      urgent_.push_front(std::move(frame));
      writing_ = false;
      lock.unlock();
      close(std::string("send failed: ") + std::strerror(error));
      lock.lock();
      return;
    } else {
      urgent_.push_front(std::move(frame));  // flush() retries, or waits for room
    }
    flush(lock);
  }

  // Moves a few pieces from the streams into ready_pieces_, round-robin, when nothing more
  // urgent is waiting.
  void take_pieces() {
    std::size_t bytes = 0;
    for (std::size_t i = 0; 2 * (i + 1) < kMaxIovecs && bytes < kPieceBatchBytes &&
                            !streams_.empty() && urgent_.empty();
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

  // Writes until the queues are empty or the socket is full (then sets blocked_). Called with
  // the lock held and writing_ set; clears writing_. The lock is
  // released during each sendmsg() so that other threads can queue frames meanwhile (they go
  // out in the next batch, ahead of any further piece); withdraw() and close() wait for the
  // call to return, because the batch borrows payload bytes.
  void flush(std::unique_lock<std::mutex>& lock) {
    while (!closed_) {
      if (urgent_.empty() && ready_pieces_.empty()) take_pieces();
      std::array<iovec, kMaxIovecs> iov;
      std::size_t count = 0;
      auto add = [&](const void* data, std::size_t size) {
        if (size > 0) iov[count++] = {const_cast<void*>(data), size};
      };
      add(partial_.data() + partial_offset_, partial_.size() - partial_offset_);
      std::array<std::size_t, 2> batch{0, 0};  // frames of urgent_ and ready_pieces_ included
      const std::array<const std::deque<QueuedFrame>*, 2> queues{&urgent_, &ready_pieces_};
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
      const ssize_t n = ::sendmsg(fd_, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
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
      if (error == EAGAIN || error == EWOULDBLOCK) {
        writing_ = false;
        blocked_ = true;
        // A claiming thread polls for POLLOUT; otherwise the io thread waits for room.
        if (!options_.foreground_reading || io_duty_) {
          asio::post(executor_, [self = shared_from_this()] { self->wait_writable(); });
        }
        return;
      }
      writing_ = false;
      lock.unlock();
      close(std::string("send failed: ") + std::strerror(error));
      lock.lock();
      return;
    }
    writing_ = false;
    if (draining_) {
      asio::post(executor_, [self = shared_from_this()] { self->close_if_drained(); });
    }
  }

  // Drops what the kernel took of the batch: `partial_` first, then the batch's frames; the
  // frame it took only part of leaves its remainder in `partial_`.
  void consume(std::size_t n, std::array<std::size_t, 2> batch) {
    const std::size_t from_partial = std::min(n, partial_.size() - partial_offset_);
    partial_offset_ += from_partial;
    n -= from_partial;
    if (partial_offset_ == partial_.size()) {
      partial_.clear();
      partial_offset_ = 0;
    }
    const std::array<std::deque<QueuedFrame>*, 2> queues{&urgent_, &ready_pieces_};
    for (std::size_t q = 0; q < queues.size() && n > 0; ++q) {
      std::deque<QueuedFrame>& queue = *queues[q];
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
          rest.insert(rest.end(),
                      f.payload.begin() + static_cast<std::ptrdiff_t>(n - f.head.size()),
                      f.payload.end());
        }
        partial_ = std::move(rest);
        partial_offset_ = 0;
        queue.pop_front();
        n = 0;
      }
    }
  }

  // While draining (close_when_sent), closes as soon as nothing is left to write.
  void close_if_drained() {
    if (drain_reason_.empty() || !handler_) return;
    {
      std::lock_guard lock(mutex_);
      if (writing_ || blocked_ || !urgent_.empty() || !ready_pieces_.empty() || !streams_.empty() ||
          partial_offset_ < partial_.size()) {
        return;
      }
    }
    do_close(drain_reason_);
  }

  // Writes what waited for room once the socket has some.
  void write_when_room(std::unique_lock<std::mutex>& lock) {
    if (!blocked_ || writing_ || closed_) return;
    blocked_ = false;
    writing_ = true;
    flush(lock);
  }

  // ---- the io thread's watch on the socket ------------------------------------------------

  // Registers the socket with the io thread's reactor (io thread only).
  void watch() {
    if (registered_ || !open_) return;
    boost::system::error_code ec;
    watcher_.assign(fd_, ec);
    if (ec) {
      fail("cannot watch the socket: " + ec.message());
      return;
    }
    registered_ = true;
  }

  // Takes the socket out of the reactor once nothing waits on it (io thread only).
  void unwatch_if_idle() {
    if (!registered_ || io_duty_ || write_wait_armed_) return;
    watcher_.release();
    registered_ = false;
  }

  // The io thread serves the socket: reads what is there and waits for more.
  void take_duty() {
    if (!handler_ || io_duty_ || !open_) return;
    io_duty_ = true;
    watch();
    {
      std::unique_lock lock(read_mutex_, std::try_to_lock);
      if (lock) read_available();
    }
    if (blocked_) wait_writable();
    wait_readable();
  }

  void wait_readable() {
    if (!open_ || !registered_) return;
    watcher_.async_wait(asio::posix::stream_descriptor::wait_read,
                        [self = shared_from_this()](const boost::system::error_code& ec) {
                          if (ec || !self->handler_) return;
                          self->on_readable();
                        });
  }

  void on_readable() {
    if (options_.foreground_reading && foreground_readers_.load() > 0) {
      // An event loop serves the socket: leave it alone until claims stop coming.
      io_duty_ = false;
      unwatch_if_idle();
      park();
      return;
    }
    {
      std::unique_lock lock(read_mutex_, std::try_to_lock);
      if (lock) read_available();
    }
    wait_readable();
  }

  // Off duty: looks again after a while, and takes the socket back if nobody has claimed it
  // meanwhile.
  void park() {
    park_timer_.expires_after(kClaimQuiet);
    park_timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
      if (ec || !self->handler_ || self->io_duty_) return;
      const auto quiet_ns = std::chrono::nanoseconds(kClaimQuiet).count();
      if (self->foreground_readers_.load() == 0 &&
          now_ns() - self->last_claim_ns_.load() >= quiet_ns) {
        self->take_duty();
      } else {
        self->park();
      }
    });
  }

  void wait_writable() {
    if (write_wait_armed_ || !open_) return;
    watch();
    if (!registered_) return;
    write_wait_armed_ = true;
    watcher_.async_wait(asio::posix::stream_descriptor::wait_write,
                        [self = shared_from_this()](const boost::system::error_code& ec) {
                          self->write_wait_armed_ = false;
                          if (ec || !self->handler_) return;
                          {
                            std::unique_lock lock(self->mutex_);
                            self->write_when_room(lock);
                          }
                          self->unwatch_if_idle();
                        });
  }

  void cork() override {
    std::lock_guard lock(mutex_);
    if (corks_++ == 0) cork_owner_ = std::this_thread::get_id();
  }

  void uncork() override {
    std::unique_lock lock(mutex_);
    if (--corks_ > 0 || writing_ || closed_) return;
    writing_ = true;
    flush(lock);
  }

  void claim_reading() override {
    ++foreground_readers_;
    last_claim_ns_ = now_ns();
  }
  void release_reading() override { --foreground_readers_; }

  short poll_events() const override { return blocked_ ? POLLIN | POLLOUT : POLLIN; }

  void service(short revents) override {
    if (!open_) return;
    if (revents & (POLLIN | POLLERR | POLLHUP)) {
      std::lock_guard lock(read_mutex_);
      read_available();
    }
    if (revents & (POLLOUT | POLLERR | POLLHUP)) {
      std::unique_lock lock(mutex_);
      write_when_room(lock);
    }
  }

  void expect_answer() override {
    if (io_duty_ || foreground_readers_.load() > 0) return;
    asio::post(executor_, [self = shared_from_this()] { self->take_duty(); });
  }

  int native_handle() const override { return open_ ? fd_ : -1; }

  // Reads until the socket has nothing more, handling each message; what the handlers send in
  // answer goes out together at the end. Called with read_mutex_.
  void read_available() {
    cork();
    read_batch();
    uncork();
  }

  void read_batch() {
    for (int rounds = 0; rounds < 64 && open_ && !failed_; ++rounds) {
      // A large URB payload goes straight to its transfer buffer; otherwise the read buffer
      // takes what is there: all of it, or only a little after a large payload, so that the
      // next large frame's head arrives without much of its payload (which would be copied).
      const std::span<std::uint8_t> direct = decoder_.direct_target();
      const std::span<std::uint8_t> into =
          !direct.empty() ? direct
                          : std::span<std::uint8_t>(read_buffer_)
                                .first(small_reads_ ? kSmallRead : read_buffer_.size());
      const ssize_t n = ::recv(fd_, into.data(), into.size(), MSG_DONTWAIT);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
      if (n <= 0) {
        fail(n == 0 ? "connection closed by peer" : std::string(std::strerror(errno)));
        return;
      }
      const auto got = static_cast<std::size_t>(n);
      if (!consume_read(got, !direct.empty())) return;
      if (direct.empty() && got == into.size() && decoder_.direct_target().empty()) {
        small_reads_ = false;  // small frames queue up: read them in bulk
      }
      // A short read took everything there was: the next recv() would find nothing.
      if (got < into.size()) return;
    }
  }

  // Decodes `n` bytes just read (into the read buffer, or directly to a payload's place);
  // false after a protocol error.
  bool consume_read(std::size_t n, bool direct) {
    last_read_ns_ = now_ns();
    auto error = direct ? decoder_.direct_received(n, *this)
                        : decoder_.feed(wire::ByteView(read_buffer_.data(), n), *this);
    if (!decoder_.direct_target().empty()) small_reads_ = true;
    if (!error) return true;
    const std::string name(wire::wire_error_name(*error));
    // The owner reports the closing, with this reason, in one line.
    log::debug("{}: protocol error: {}; closing the connection", options_.peer_name, name);
    // A peer of another protocol version learns which one this side speaks.
    const bool version = *error == wire::WireError::UnsupportedVersion;
    send(wire::Error{0, version ? wire::error_code::kNotSupported : wire::error_code::kIo,
                     version ? "protocol version not supported (this side speaks version 1)"
                             : "protocol error: " + name});
    fail(fmt::format("protocol error: {} ({})", name, wire::wire_error_description(*error)));
    return false;
  }

  std::span<std::uint8_t> payload_destination(const wire::Message& head,
                                              std::size_t length) override {
    if (failed_ || !handler_) return {};
    return handler_->payload_destination(head, length);
  }

  // Stops reading and lets the io thread close the connection.
  void fail(const std::string& reason) {
    failed_ = true;
    close(reason);
  }

  void on_heartbeat() override {}

  void on_message(wire::Message&& message) override {
    if (!failed_ && handler_) handler_->on_message(std::move(message));
  }

  // ---- heartbeat and liveness ---------------------------------------------------------

  void arm_timer() {
    if (!drain_reason_.empty()) return;  // the timer now bounds the drain
    const auto period = std::min<std::chrono::milliseconds>(
        {options_.heartbeat / 2, std::chrono::milliseconds(dead_after_ms_.load()) / 4,
         std::chrono::milliseconds(1000)});
    timer_.expires_after(std::max(period, std::chrono::milliseconds(10)));
    timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
      if (!ec && self->handler_) self->on_timer();
    });
  }

  void on_timer() {
    const std::int64_t now = now_ns();
    const auto since_read_ms = (now - last_read_ns_.load()) / 1'000'000;
    if (since_read_ms >= dead_after_ms_.load()) {
      do_close(fmt::format("nothing received for {} ms", since_read_ms));
      return;
    }
    const auto since_write_ms = (now - last_write_ns_.load()) / 1'000'000;
    if (options_.heartbeat.count() > 0 && since_write_ms >= options_.heartbeat.count()) {
      QueuedFrame heartbeat;
      const auto zeros = wire::heartbeat_frame();
      heartbeat.head.insert(heartbeat.head.end(), zeros.data(), zeros.data() + zeros.size());
      enqueue(std::move(heartbeat), std::nullopt);
    }
    arm_timer();
  }

  // ---- closing -------------------------------------------------------------------------

  void do_close(const std::string& reason) {
    if (!handler_) return;
    {
      std::lock_guard reading(read_mutex_);  // no thread is inside recv() on the socket
      std::unique_lock lock(mutex_);
      syscall_done_.wait(lock, [this] { return !in_syscall_; });
      closed_ = true;
      urgent_.clear();
      ready_pieces_.clear();
      streams_.clear();
      partial_.clear();
      partial_offset_ = 0;
      open_ = false;
      // Shut down, not closed: a thread polling the descriptor wakes up, and its number is not
      // reused while the object exists (the destructor closes it).
      ::shutdown(fd_, SHUT_RDWR);
    }
    timer_.cancel();
    park_timer_.cancel();
    io_duty_ = false;
    if (registered_) {
      watcher_.release();  // pending waits end with operation_aborted
      registered_ = false;
    }
    log::debug("{}: connection closed: {}", options_.peer_name, reason);
    auto handler = std::move(handler_);
    handler->on_closed(reason);
  }

  asio::any_io_executor executor_;
  const int fd_;
  std::shared_ptr<ConnectionHandler> handler_;  // io thread; null once closed
  ConnectionOptions options_;
  asio::steady_timer timer_;
  asio::steady_timer park_timer_;
  // io thread only: the socket's registration with the reactor, and what it is for.
  asio::posix::stream_descriptor watcher_;
  bool registered_ = false;
  bool write_wait_armed_ = false;
  std::atomic<bool> io_duty_{false};  // the io thread serves the socket (read by any thread)
  wire::StreamDecoder decoder_;
  std::vector<std::uint8_t> read_buffer_;
  bool small_reads_ = false;  // under read_mutex_
  std::atomic<std::int64_t> last_read_ns_{0};
  std::atomic<std::int64_t> last_write_ns_{0};
  std::atomic<std::int64_t> dead_after_ms_;
  std::atomic<bool> open_{true};
  std::atomic<bool> failed_{false};  // reading stopped: the connection is being closed
  std::mutex read_mutex_;            // one reader at a time: the io thread or a service() caller
  std::atomic<int> foreground_readers_{0};
  std::atomic<std::int64_t> last_claim_ns_{0};
  std::string drain_reason_;           // io thread: set by close_when_sent
  std::atomic<bool> draining_{false};  // any thread may read it

  std::mutex mutex_;  // guards everything below
  std::deque<QueuedFrame> urgent_;
  std::deque<QueuedFrame> ready_pieces_;
  std::deque<PayloadStream> streams_;
  wire::Bytes partial_;
  std::size_t partial_offset_ = 0;
  bool writing_ = false;              // a thread is flushing
  std::atomic<bool> blocked_{false};  // the socket was full: the rest waits for room
  int corks_ = 0;
  std::thread::id cork_owner_;
  bool in_syscall_ = false;  // the writer is inside sendmsg() with a batch of borrowed bytes
  std::condition_variable syscall_done_;
  bool closed_ = false;
};

}  // namespace

std::shared_ptr<Connection> make_tcp_connection(tcp::socket socket,
                                                std::shared_ptr<ConnectionHandler> handler,
                                                ConnectionOptions options) {
  return std::make_shared<TcpConnection>(std::move(socket), std::move(handler), std::move(options));
}

}  // namespace usbnet::transport
