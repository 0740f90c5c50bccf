// Connection over a TCP socket. See connection.h for the contract.
//
// This file is the glue: the writer (frame_writer.h) and the reader (frame_reader.h) do the
// byte work; here are who reads when, the heartbeat and liveness timer, and closing.
//
// The socket is a plain descriptor; the io thread watches it through `watcher_`, a reactor
// registration that exists only while the io thread serves the socket (always on the agent; on
// a client, only while no event loop claims the socket), because a registered socket wakes the
// io thread for every segment that arrives, whether or not it wants to read.
#include <sys/socket.h>
#include <unistd.h>

#include <poll.h>
#include <atomic>

#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cerrno>
#include <cstring>
#include <mutex>

#include "common/log.h"
#include "transport/connection.h"
#include "transport/frame_reader.h"
#include "transport/frame_writer.h"
#include "transport/socket_options.h"

namespace usbnet::transport {

namespace asio = boost::asio;
using asio::ip::tcp;

namespace {

// A client's io thread takes the socket back when no event loop has claimed it for this long.
constexpr std::chrono::milliseconds kClaimQuiet{10};

ConnectionOptions with_clamped_piece_size(ConnectionOptions options) {
  options.piece_size = wire::clamp_piece_size(options.piece_size);
  return options;
}

class TcpConnection final : public Connection,
                            public std::enable_shared_from_this<TcpConnection>,
                            private wire::MessageSink,
                            private FrameWriter::Owner {
 public:
  TcpConnection(tcp::socket socket, std::shared_ptr<ConnectionHandler> handler,
                ConnectionOptions options)
      : executor_(socket.get_executor()),
        fd_(socket.release()),  // out of the reactor: see take_duty()
        handler_(std::move(handler)),
        options_(with_clamped_piece_size(std::move(options))),
        timer_(executor_),
        park_timer_(executor_),
        watcher_(executor_),
        writer_(fd_, options_.piece_size, *this),
        reader_(fd_, options_.peer_name),
        dead_after_ms_(options_.dead_after.count()) {
    configure_socket(fd_, options_.piece_size);
  }

  ~TcpConnection() override {
    if (registered_) watcher_.release();
    ::close(fd_);
  }

  void start() override {
    asio::post(executor_, [self = shared_from_this()] { self->take_duty(); });
    arm_timer();
  }

  bool send(const wire::Message& message) override { return writer_.send(message); }
  bool send_urb(wire::Message urb, std::shared_ptr<const void> keepalive) override {
    return writer_.send_urb(std::move(urb), std::move(keepalive));
  }
  Withdrawn withdraw(std::uint32_t trans_id) override { return writer_.withdraw(trans_id); }
  void cork() override { writer_.cork(); }
  void uncork() override { writer_.uncork(); }

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
      self->writer_.notify_when_drained();
      self->timer_.expires_after(grace);
      self->timer_.async_wait([self](const boost::system::error_code& ec) {
        if (!ec) self->do_close(self->drain_reason_);
      });
      self->close_if_drained();
    });
  }

  bool is_open() const override { return open_.load(); }
  const std::string& peer_name() const override { return options_.peer_name; }

  int native_handle() const override { return open_ ? fd_ : -1; }

  void claim_reading() override {
    ++foreground_readers_;
    last_claim_ns_ = now_ns();
  }
  void release_reading() override { --foreground_readers_; }

  short poll_events() const override { return writer_.blocked() ? POLLIN | POLLOUT : POLLIN; }

  void service(short revents) override {
    if (!open_) return;
    if (revents & (POLLIN | POLLERR | POLLHUP)) {
      std::lock_guard lock(read_mutex_);
      read_available();
    }
    if (revents & (POLLOUT | POLLERR | POLLHUP)) writer_.write_when_room();
  }

  void expect_answer() override {
    if (io_duty_ || foreground_readers_.load() > 0) return;
    asio::post(executor_, [self = shared_from_this()] { self->take_duty(); });
  }

 private:
  // ---- the writer's needs (called under its lock: post only) ------------------------------

  void wait_for_room() override {
    // A claiming thread polls for POLLOUT; otherwise the io thread waits for room.
    if (!options_.foreground_reading || io_duty_) {
      asio::post(executor_, [self = shared_from_this()] { self->wait_writable(); });
    }
  }

  void write_failed(int error) override {
    close(std::string("send failed: ") + std::strerror(error));
  }

  void drained() override {
    asio::post(executor_, [self = shared_from_this()] { self->close_if_drained(); });
  }

  // While draining (close_when_sent), closes as soon as nothing is left to write.
  void close_if_drained() {
    if (drain_reason_.empty() || !handler_) return;
    if (writer_.idle()) do_close(drain_reason_);
  }

  // ---- reading --------------------------------------------------------------------------

  // Reads until the socket has nothing more, handling each message; what the handlers send in
  // answer goes out together at the end. Called with read_mutex_.
  void read_available() {
    if (!open_ || failed_) return;
    writer_.cork();
    auto failure = reader_.read_available(*this);
    writer_.uncork();
    if (!failure) return;
    if (failure->tell_peer) writer_.send(*failure->tell_peer);
    fail(failure->reason);
  }

  std::span<std::uint8_t> payload_destination(const wire::Message& head,
                                              std::size_t length) override {
    if (failed_ || !handler_) return {};
    return handler_->payload_destination(head, length);
  }

  void on_heartbeat() override {}

  void on_message(wire::Message&& message) override {
    if (!failed_ && handler_) handler_->on_message(std::move(message));
  }

  // Stops reading and lets the io thread close the connection.
  void fail(const std::string& reason) {
    failed_ = true;
    close(reason);
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
    if (writer_.blocked()) wait_writable();
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
                          self->writer_.write_when_room();
                          self->unwatch_if_idle();
                        });
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
    const auto since_read_ms = (now - reader_.last_read_ns()) / 1'000'000;
    if (since_read_ms >= dead_after_ms_.load()) {
      do_close(fmt::format("nothing received for {} ms", since_read_ms));
      return;
    }
    const auto since_write_ms = (now - writer_.last_write_ns()) / 1'000'000;
    if (options_.heartbeat.count() > 0 && since_write_ms >= options_.heartbeat.count()) {
      writer_.send_heartbeat();
    }
    arm_timer();
  }

  // ---- closing -------------------------------------------------------------------------

  void do_close(const std::string& reason) {
    if (!handler_) return;
    {
      std::lock_guard reading(read_mutex_);  // no thread is inside recv() on the socket
      writer_.close();
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
  FrameWriter writer_;
  std::mutex read_mutex_;  // one reader at a time: the io thread or a service() caller
  FrameReader reader_;     // under read_mutex_
  std::atomic<std::int64_t> dead_after_ms_;
  std::atomic<bool> open_{true};
  std::atomic<bool> failed_{false};  // reading stopped: the connection is being closed
  std::atomic<int> foreground_readers_{0};
  std::atomic<std::int64_t> last_claim_ns_{0};
  std::string drain_reason_;  // io thread: set by close_when_sent
};

}  // namespace

std::shared_ptr<Connection> make_tcp_connection(tcp::socket socket,
                                                std::shared_ptr<ConnectionHandler> handler,
                                                ConnectionOptions options) {
  return std::make_shared<TcpConnection>(std::move(socket), std::move(handler), std::move(options));
}

}  // namespace usbnet::transport
