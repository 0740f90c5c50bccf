// A framed stream driven by an Asio executor: one object per connection, on the agent's io
// thread or the client's. It waits on the channel's descriptor as the stream's interest() asks,
// calls readable() and writable(), ticks the stream at its next deadline, and when the stream
// closes stops waiting and finishes the close (the handler's on_closed runs on the executor).
// It owns no thread: it lives as long as a shared_ptr to it, which its pending waits hold, and
// it keeps the handler alive until on_closed has run.
//
// Loans, for the shim: a thread that waits for the peer anyway (an event loop in
// libusb_handle_events) may borrow the stream, poll its descriptor itself and call serve(), so
// that the peer's answers are read and handled on that thread without a hop through the io
// thread. While loans keep coming the io thread leaves the descriptor out of its own poll set
// altogether, so that the peer's frames wake one thread, not two: it takes the stream back when
// no loan has been out for 10 ms (it looks every 10 ms while none is out, every 100 ms while
// one is), or at once on reclaim() (a thread waits for an answer that it will not read itself).
// Frames that wait for room are written by whichever borrower polls for it, or by the io thread
// when none does. The agent never lends.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>

#include "transport/byte_channel.h"
#include "transport/framed_stream.h"

namespace usbnet::transport {

class AsioConnection final : public StreamDriver,
                             public std::enable_shared_from_this<AsioConnection> {
 public:
  AsioConnection(boost::asio::any_io_executor executor, std::unique_ptr<ByteChannel> channel,
                 StreamOptions options, std::shared_ptr<StreamHandler> handler);
  ~AsioConnection() override;

  // Starts the handshake, reading and the deadlines. Call once, after the handler is ready.
  void start();
  FramedStream& stream() { return stream_; }
  // The stream, keeping this connection alive (for a handler that sends through it).
  std::shared_ptr<FramedStream> shared_stream() { return {shared_from_this(), &stream_}; }

  // A loan of the stream to a thread that polls its descriptor (see the top). Thread-safe.
  class Loan {
   public:
    Loan() = default;
    Loan(Loan&& other) noexcept;
    Loan& operator=(Loan&& other) noexcept;
    ~Loan();
    int fd() const;          // -1: nothing to poll
    short events() const;    // what to poll the descriptor for (POLLIN, POLLOUT)
    bool ready_now() const;  // the stream has input already: do not block in poll()
    // After poll(): reads, writes and handles what `revents` allows, on the calling thread.
    void serve(short revents);

   private:
    friend class AsioConnection;
    explicit Loan(std::shared_ptr<AsioConnection> connection);
    void give_back();

    std::shared_ptr<AsioConnection> connection_;
    short read_events_ = 0;   // the events that call readable()
    short write_events_ = 0;  // the events that call writable() (frames wait for room)
    bool ready_now_ = false;
  };
  Loan lend();
  // A thread is about to wait for an answer it will not read itself: makes sure that some
  // thread reads. Thread-safe.
  void reclaim();

 private:
  void wake() override;  // StreamDriver

  void refresh();
  void watch();
  void unwatch_if_idle();
  void wait_for(Readiness readiness, bool for_reading);
  void on_readable();
  void on_writable();
  void arm_timer();
  void park();
  void park_for(std::chrono::nanoseconds wait);
  void take_back();
  void finish();

  boost::asio::any_io_executor executor_;
  std::shared_ptr<StreamHandler> handler_;  // io thread; null once closed
  FramedStream stream_;

  // io thread only: the descriptor's registration with the reactor, and what it waits for.
  boost::asio::posix::stream_descriptor watcher_;
  bool registered_ = false;
  bool read_armed_ = false;
  bool write_armed_ = false;
  bool finished_ = false;
  boost::asio::steady_timer timer_;
  std::chrono::steady_clock::time_point timer_at_ = std::chrono::steady_clock::time_point::max();
  boost::asio::steady_timer park_timer_;

  // The loans (any thread).
  std::atomic<bool> io_serving_{false};  // the io thread watches the descriptor
  std::atomic<int> loans_out_{0};
  std::atomic<int> loans_polling_room_{0};     // loans whose poll() waits for room
  std::atomic<std::int64_t> last_loan_ns_{0};  // when a loan was last made or given back
};

}  // namespace usbnet::transport
