#include "transport/asio_connection.h"

#include <poll.h>

#include <boost/asio/post.hpp>

#include "transport/now_ns.h"

namespace usbnet::transport {

namespace asio = boost::asio;
using Clock = std::chrono::steady_clock;

namespace {

// The io thread takes a lent stream back when no loan has been out for this long.
constexpr std::chrono::milliseconds kLoanQuiet{10};
// While a loan is out, the io thread looks again only this much later: the borrower polls and
// reads, and looking every kLoanQuiet would wake the io thread a hundred times a second for
// nothing (measured in the lab's guest: a tenth of a synchronous program's CPU).
constexpr std::chrono::milliseconds kLoanPatience{100};
// The timer never fires more often than this, whatever the deadlines say.
constexpr std::chrono::milliseconds kShortestTick{10};

short poll_events_of(Readiness readiness) {
  short events = 0;
  if (readiness & kReadable) events |= POLLIN;
  if (readiness & kWritable) events |= POLLOUT;
  return events;
}

}  // namespace

AsioConnection::AsioConnection(asio::any_io_executor executor, std::unique_ptr<ByteChannel> channel,
                               StreamOptions options, std::shared_ptr<StreamHandler> handler)
    : executor_(std::move(executor)),
      handler_(std::move(handler)),
      stream_(std::move(channel), std::move(options), *handler_, *this),
      watcher_(executor_),
      timer_(executor_),
      park_timer_(executor_) {}

AsioConnection::~AsioConnection() {
  // The descriptor belongs to the channel: the watcher must not close it.
  if (registered_) watcher_.release();
}

void AsioConnection::start() {
  asio::post(executor_, [self = shared_from_this()] {
    self->stream_.start();
    self->io_serving_ = true;
    self->take_back();
  });
}

// ---- the stream's driver -----------------------------------------------------------------

void AsioConnection::wake() {
  // While a borrower polls for room it writes too, and it reads: nothing for the io thread.
  if (!io_serving_ && loans_polling_room_.load() > 0 && !stream_.closing()) return;
  if (auto self = weak_from_this().lock()) {
    asio::post(executor_, [self = std::move(self)] { self->refresh(); });
  }
}

// Waits for what the stream asks, as far as the io thread serves it (io thread only).
void AsioConnection::refresh() {
  if (finished_) return;
  if (stream_.closing()) return finish();
  const Interest interest = stream_.interest();
  if (io_serving_ && handler_->wants_input()) {
    if (interest.now) {
      asio::post(executor_, [self = shared_from_this()] { self->on_readable(); });
    } else if (interest.reading != kNoReadiness) {
      wait_for(interest.reading, true);
    }
  }
  if (interest.writing != kNoReadiness && (io_serving_ || loans_polling_room_.load() == 0)) {
    wait_for(interest.writing, false);
  }
  arm_timer();
  unwatch_if_idle();
}

// Registers the descriptor with the io thread's reactor.
void AsioConnection::watch() {
  if (registered_) return;
  boost::system::error_code ec;
  watcher_.assign(stream_.pollable_fd(), ec);
  if (ec) return stream_.close("cannot watch the socket: " + ec.message());
  registered_ = true;
}

// Takes the descriptor out of the reactor while the io thread has nothing to wait for on it: a
// registered descriptor wakes the io thread for every segment that arrives.
void AsioConnection::unwatch_if_idle() {
  if (!registered_ || io_serving_ || read_armed_ || write_armed_) return;
  watcher_.release();
  registered_ = false;
}

void AsioConnection::wait_for(Readiness readiness, bool for_reading) {
  bool& armed = for_reading ? read_armed_ : write_armed_;
  if (armed) return;
  watch();
  if (!registered_) return;
  armed = true;
  const auto wait = readiness & kWritable ? asio::posix::stream_descriptor::wait_write
                                          : asio::posix::stream_descriptor::wait_read;
  watcher_.async_wait(
      wait, [self = shared_from_this(), for_reading](const boost::system::error_code& ec) {
        (for_reading ? self->read_armed_ : self->write_armed_) = false;
        if (ec || self->finished_) return;
        if (for_reading) {
          self->on_readable();
        } else {
          self->on_writable();
        }
      });
}

void AsioConnection::on_readable() {
  if (finished_) return;
  if (loans_out_.load() > 0) {
    // A borrower reads what arrives: leave the descriptor to it until loans stop coming.
    io_serving_ = false;
    unwatch_if_idle();
    park();
    return;
  }
  if (handler_->wants_input()) stream_.readable();
  refresh();
}

void AsioConnection::on_writable() {
  stream_.writable();
  refresh();
}

void AsioConnection::arm_timer() {
  auto at = stream_.next_deadline();
  if (at >= timer_at_) return;  // it fires earlier anyway, and looks again then
  at = std::max(at, Clock::now() + kShortestTick);
  timer_at_ = at;
  timer_.expires_at(at);
  timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
    if (ec) return;  // cancelled, or moved earlier
    self->timer_at_ = Clock::time_point::max();
    if (self->finished_) return;
    self->stream_.tick(Clock::now());
    self->refresh();
  });
}

void AsioConnection::finish() {
  finished_ = true;
  io_serving_ = false;
  timer_.cancel();
  park_timer_.cancel();
  if (registered_) {
    watcher_.release();  // pending waits end with operation_aborted
    registered_ = false;
  }
  stream_.finish_close();
  handler_.reset();
}

// ---- loans --------------------------------------------------------------------------------

// Off duty: looks again after a while, and takes the stream back if no loan has been out
// meanwhile. Frames that wait for room while no borrower polls for it are the io thread's.
void AsioConnection::park() { park_for(kLoanQuiet); }

void AsioConnection::park_for(std::chrono::nanoseconds wait) {
  park_timer_.expires_after(wait);
  park_timer_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
    if (ec || self->finished_ || self->io_serving_) return;
    if (self->loans_out_.load() == 0) {
      const auto quiet = std::chrono::nanoseconds(kLoanQuiet);
      const auto since = std::chrono::nanoseconds(now_ns() - self->last_loan_ns_.load());
      if (since >= quiet) return self->take_back();
      self->refresh();
      return self->park_for(quiet - since);
    }
    self->refresh();
    self->park_for(kLoanPatience);
  });
}

// The io thread serves the stream again: reads what is there and waits for more.
void AsioConnection::take_back() {
  if (finished_) return;
  io_serving_ = true;
  if (handler_->wants_input()) stream_.readable();
  refresh();
}

void AsioConnection::reclaim() {
  if (io_serving_ || loans_out_.load() > 0) return;
  asio::post(executor_, [self = shared_from_this()] {
    if (!self->io_serving_) self->take_back();
  });
}

AsioConnection::Loan AsioConnection::lend() { return Loan(shared_from_this()); }

AsioConnection::Loan::Loan(std::shared_ptr<AsioConnection> connection)
    : connection_(std::move(connection)) {
  ++connection_->loans_out_;
  connection_->last_loan_ns_ = now_ns();
  const Interest interest = connection_->stream_.interest();
  read_events_ = poll_events_of(interest.reading);
  write_events_ = poll_events_of(interest.writing);
  ready_now_ = interest.now;
  if (write_events_ != 0) ++connection_->loans_polling_room_;
}

AsioConnection::Loan::Loan(Loan&& other) noexcept
    : connection_(std::move(other.connection_)),
      read_events_(other.read_events_),
      write_events_(other.write_events_),
      ready_now_(other.ready_now_) {}

AsioConnection::Loan& AsioConnection::Loan::operator=(Loan&& other) noexcept {
  if (this != &other) {
    give_back();
    connection_ = std::move(other.connection_);
    read_events_ = other.read_events_;
    write_events_ = other.write_events_;
    ready_now_ = other.ready_now_;
  }
  return *this;
}

AsioConnection::Loan::~Loan() { give_back(); }

void AsioConnection::Loan::give_back() {
  if (!connection_) return;
  connection_->last_loan_ns_ = now_ns();
  // The last borrower that polled for room leaves: the io thread waits for it now.
  if (write_events_ != 0 && --connection_->loans_polling_room_ == 0 &&
      connection_->stream_.interest().writing != kNoReadiness) {
    connection_->wake();
  }
  --connection_->loans_out_;
  connection_.reset();
}

int AsioConnection::Loan::fd() const {
  const bool wanted = read_events_ != 0 || write_events_ != 0 || ready_now_;
  return connection_ && wanted ? connection_->stream_.pollable_fd() : -1;
}

short AsioConnection::Loan::events() const { return read_events_ | write_events_; }

bool AsioConnection::Loan::ready_now() const { return ready_now_; }

void AsioConnection::Loan::serve(short revents) {
  if (!connection_) return;
  FramedStream& stream = connection_->stream_;
  const short failed = revents & (POLLERR | POLLHUP);
  if (ready_now_ || (read_events_ != 0 && (revents & (read_events_ | failed)))) stream.readable();
  if (write_events_ != 0 && (revents & (write_events_ | failed))) stream.writable();
}

}  // namespace usbnet::transport
