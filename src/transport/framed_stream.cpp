// FramedStream: the writer (frame_writer.h) and the reader (frame_reader.h) do the byte work;
// here are the handshake, the deadlines and closing.
#include "transport/framed_stream.h"

#include <algorithm>
#include <mutex>

#include "common/log.h"
#include "transport/frame_reader.h"
#include "transport/frame_writer.h"
#include "transport/now_ns.h"

namespace usbnet::transport {

namespace {

using Clock = std::chrono::steady_clock;

StreamOptions with_clamped_piece_size(StreamOptions options) {
  options.piece_size = wire::clamp_piece_size(options.piece_size);
  return options;
}

std::int64_t ns_of(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count();
}

Clock::time_point time_of(std::int64_t ns) {
  return Clock::time_point(
      std::chrono::duration_cast<Clock::duration>(std::chrono::nanoseconds(ns)));
}

constexpr std::int64_t kNsPerMs = 1'000'000;

}  // namespace

class FramedStream::Impl final : private wire::MessageSink, private FrameWriter::Owner {
 public:
  Impl(std::unique_ptr<ByteChannel> channel, StreamOptions options, StreamHandler& handler,
       StreamDriver& driver)
      : channel_(std::move(channel)),
        options_(with_clamped_piece_size(std::move(options))),
        driver_(driver),
        writer_(*channel_, options_.piece_size, *this),
        handler_(&handler),
        reader_(*channel_, options_.peer_name, options_.frame_limit_until_admitted),
        dead_after_ms_(options_.dead_after.count()) {}

  // ---- sending ---------------------------------------------------------------------------

  FrameWriter& writer() { return writer_; }
  const FrameWriter& writer() const { return writer_; }

  // ---- the connection --------------------------------------------------------------------

  void set_peer_heartbeat(std::chrono::milliseconds interval) {
    if (interval.count() <= 0) return;
    dead_after_ms_ = 3 * interval.count();
    driver_.wake();  // the peer's deadline may have come closer
  }

  void close(const std::string& reason) {
    {
      std::lock_guard lock(state_mutex_);
      if (closing_) return;
      close_reason_ = reason;
      closing_ = true;
    }
    driver_.wake();
  }

  void close_when_sent(const std::string& reason, std::chrono::milliseconds grace) {
    {
      std::lock_guard lock(state_mutex_);
      if (closing_ || !drain_reason_.empty()) return;
      drain_reason_ = reason;
      drain_deadline_ns_ = now_ns() + std::chrono::nanoseconds(grace).count();
    }
    writer_.notify_when_drained();
    if (writer_.idle()) return close(reason);
    driver_.wake();  // the drain's deadline
  }

  bool closing() const { return closing_.load(); }
  const std::string& peer_name() const { return options_.peer_name; }
  int pollable_fd() const { return channel_->pollable_fd(); }
  void input_wanted() { driver_.wake(); }
  void admit() { reader_.admit(); }  // on the reading thread, with read_mutex_ (see the header)

  // ---- driving ---------------------------------------------------------------------------

  void start() {
    std::lock_guard lock(read_mutex_);
    advance_handshake();
  }

  Interest interest() const {
    if (closing_) return {};
    if (handshaking_) {
      const Readiness wait = handshake_wait_.load();
      return {wait, kNoReadiness, wait == kNoReadiness};
    }
    return {reader_.readiness(), writer_.blocked() ? writer_.room_readiness() : kNoReadiness,
            channel_->has_buffered_input()};
  }

  void readable() {
    if (closing_) return;
    std::lock_guard lock(read_mutex_);
    if (!handler_ || closing_) return;
    if (!handshake_done_) {
      advance_handshake();
      if (!handshake_done_) return;
    }
    // What the handler sends in answer to what is read goes out together at the end.
    writer_.cork();
    // The handler may stop wanting input in the middle (its peer does not read what it
    // answers): what was read is delivered, and no more is read.
    auto failure = reader_.read_available(*this, [this] { return handler_->wants_input(); });
    writer_.uncork();
    if (!failure) return;
    if (failure->tell_peer) writer_.send(*failure->tell_peer);
    close(failure->reason);
  }

  void writable() {
    if (closing_) return;
    if (handshaking_) {
      std::lock_guard lock(read_mutex_);
      if (!handshake_done_) return advance_handshake();
    }
    writer_.write_when_room();
  }

  void tick(Clock::time_point now) {
    if (closing_) return;
    const std::int64_t at = ns_of(now);
    const std::int64_t drain_deadline = drain_deadline_ns_.load();
    if (drain_deadline != 0 && at >= drain_deadline) {
      std::string reason;
      {
        std::lock_guard lock(state_mutex_);
        reason = drain_reason_;
      }
      return close(reason);
    }
    const std::int64_t since_read_ms = (at - reader_.last_read_ns()) / kNsPerMs;
    if (since_read_ms >= dead_after_ms_.load()) {
      return close(fmt::format("nothing received for {} ms", since_read_ms));
    }
    if (options_.heartbeat.count() > 0 && at >= heartbeat_due_ns()) {
      last_heartbeat_ns_ = at;
      writer_.send_heartbeat();
    }
  }

  Clock::time_point next_deadline() const {
    std::int64_t next = reader_.last_read_ns() + dead_after_ms_.load() * kNsPerMs;
    if (options_.heartbeat.count() > 0) next = std::min(next, heartbeat_due_ns());
    if (const std::int64_t drain = drain_deadline_ns_.load(); drain != 0) {
      next = std::min(next, drain);
    }
    return time_of(next);
  }

  void finish_close() {
    StreamHandler* handler;
    std::string reason;
    {
      std::lock_guard reading(read_mutex_);  // no thread is reading the channel
      if (!handler_) return;
      handler = std::exchange(handler_, nullptr);
      writer_.close();
      channel_->shutdown();
    }
    {
      std::lock_guard lock(state_mutex_);
      closing_ = true;  // finish_close without close(): the driver is going away
      reason = close_reason_.empty() ? "closed" : close_reason_;
    }
    log::debug("{}: connection closed: {}", options_.peer_name, reason);
    handler->on_closed(reason);
  }

 private:
  // When this side next owes the peer a heartbeat: an interval after its last frame.
  std::int64_t heartbeat_due_ns() const {
    const auto interval = std::chrono::nanoseconds(options_.heartbeat).count();
    return std::max(writer_.last_write_ns(), last_heartbeat_ns_.load()) + interval;
  }

  // With read_mutex_.
  void advance_handshake() {
    if (handshake_done_) return;
    const IoResult step = channel_->handshake();
    switch (step.status) {
      case IoResult::Status::Done:
        handshake_done_ = true;
        handshaking_ = false;
        writer_.open();  // what was sent meanwhile goes out now
        handler_->on_handshake_done();
        return;
      case IoResult::Status::WouldBlock:
        handshake_wait_ = step.wait_for;
        return;
      case IoResult::Status::Closed:
        return close("the handshake failed: connection closed by peer");
      case IoResult::Status::Failed:
        return close("the handshake failed: " + step.error);
    }
  }

  // wire::MessageSink: what the reader decodes (with read_mutex_) goes to the handler until the
  // stream closes.
  void on_message(wire::Message&& message) override {
    if (!closing_) handler_->on_message(std::move(message));
  }
  std::span<std::uint8_t> payload_destination(const wire::Message& head,
                                              std::size_t length) override {
    if (closing_) return {};
    return handler_->payload_destination(head, length);
  }

  // FrameWriter::Owner (called with the writer's lock held).
  void wait_for_room() override { driver_.wake(); }
  void write_failed(const std::string& error) override { close(error); }
  void drained() override {
    std::string reason;
    {
      std::lock_guard lock(state_mutex_);
      reason = drain_reason_;
    }
    close(reason);
  }

  const std::unique_ptr<ByteChannel> channel_;
  const StreamOptions options_;
  StreamDriver& driver_;
  FrameWriter writer_;

  std::mutex read_mutex_;        // one reader at a time; finish_close waits for it
  StreamHandler* handler_;       // under read_mutex_; null once closed
  FrameReader reader_;           // under read_mutex_
  bool handshake_done_ = false;  // under read_mutex_
  std::atomic<bool> handshaking_{true};
  std::atomic<Readiness> handshake_wait_{kNoReadiness};

  std::atomic<std::int64_t> dead_after_ms_;
  std::atomic<std::int64_t> last_heartbeat_ns_{0};

  std::mutex state_mutex_;  // guards the reasons below
  std::atomic<bool> closing_{false};
  std::string close_reason_;
  std::string drain_reason_;                        // set by close_when_sent
  std::atomic<std::int64_t> drain_deadline_ns_{0};  // 0: no drain
};

FramedStream::FramedStream(std::unique_ptr<ByteChannel> channel, StreamOptions options,
                           StreamHandler& handler, StreamDriver& driver)
    : impl_(std::make_unique<Impl>(std::move(channel), std::move(options), handler, driver)) {}

FramedStream::~FramedStream() = default;

bool FramedStream::send(const wire::Message& message) { return impl_->writer().send(message); }
bool FramedStream::send_urb(wire::Message urb, std::shared_ptr<const void> keepalive) {
  return impl_->writer().send_urb(std::move(urb), std::move(keepalive));
}
Withdrawn FramedStream::withdraw(std::uint32_t trans_id) {
  return impl_->writer().withdraw(trans_id);
}
void FramedStream::cork() { impl_->writer().cork(); }
void FramedStream::uncork() { impl_->writer().uncork(); }
std::size_t FramedStream::queued_bytes() const { return impl_->writer().queued_bytes(); }

void FramedStream::set_peer_heartbeat(std::chrono::milliseconds interval) {
  impl_->set_peer_heartbeat(interval);
}
void FramedStream::close(const std::string& reason) { impl_->close(reason); }
void FramedStream::close_when_sent(const std::string& reason, std::chrono::milliseconds grace) {
  impl_->close_when_sent(reason, grace);
}
void FramedStream::input_wanted() { impl_->input_wanted(); }
void FramedStream::admit() { impl_->admit(); }
const std::string& FramedStream::peer_name() const { return impl_->peer_name(); }

int FramedStream::pollable_fd() const { return impl_->pollable_fd(); }
void FramedStream::start() { impl_->start(); }
Interest FramedStream::interest() const { return impl_->interest(); }
void FramedStream::readable() { impl_->readable(); }
void FramedStream::writable() { impl_->writable(); }
void FramedStream::tick(std::chrono::steady_clock::time_point now) { impl_->tick(now); }
std::chrono::steady_clock::time_point FramedStream::next_deadline() const {
  return impl_->next_deadline();
}
bool FramedStream::closing() const { return impl_->closing(); }
void FramedStream::finish_close() { impl_->finish_close(); }

}  // namespace usbnet::transport
