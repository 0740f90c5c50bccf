// A framed usbnet connection over TCP: the one seam between the protocol and the network.
//
// Reading: the io thread reads whatever arrives, unless another thread serves the socket: a
// thread that waits for the peer's answer anyway (an event loop) may claim the socket, poll it
// itself and call service(), so that the answer is handled without a thread hop. While such
// claims come and go the io thread keeps the socket out of its own poll set altogether, so the
// peer's frames wake one thread, not two; it takes the socket back when nobody has claimed it
// for a while, or at once when a thread waits for an answer it will not read itself
// (expect_answer). Messages reach the handler on whichever thread read them, one at a time.
//
// Sending is thread-safe: a sender whose frame finds the socket idle writes it itself, at once,
// without a thread hop; otherwise the frame waits in the queue and whoever is writing sends it.
// When the socket is full, whoever serves the socket sends the rest when it has room (a
// claiming thread polls for POLLOUT: see poll_events). Small messages go before payload pieces,
// so a control URB waits for at most one piece of a large transfer. Heartbeats go out when the
// connection has been idle for the heartbeat interval, and a peer silent for `dead_after` is
// declared dead.
//
// TLS or another carrier would slot in as another implementation of Connection.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/ip/tcp.hpp>

#include "usbnet/messages.h"

namespace usbnet::transport {

struct ConnectionOptions {
  std::chrono::milliseconds heartbeat{5000};    // send a heartbeat after this long idle
  std::chrono::milliseconds dead_after{15000};  // close when the peer is silent this long
  std::uint32_t piece_size = wire::kDefaultPieceSize;
  std::string peer_name;  // for log lines ("127.0.0.1:51234")
  // Other threads may serve the socket (claim_reading / service). Without it the io thread is
  // the only reader.
  bool foreground_reading = false;
};

class ConnectionHandler {
 public:
  virtual ~ConnectionHandler() = default;
  // A whole, valid message. Payload views are valid during the call only. Called on the io
  // thread, or on a thread in service(); never on two threads at once.
  virtual void on_message(wire::Message&& message) = 0;
  // Where the payload of a large URB message belongs, so that it is read there directly (see
  // wire::MessageSink::payload_destination): `head` has an empty payload, `length` is the
  // payload's size. Called on the thread that reads, before on_message for the same frame, which
  // then sees its payload in that place. The place must stay valid until that on_message, or
  // until on_closed. Default: nowhere (the bytes are gathered and copied).
  virtual std::span<std::uint8_t> payload_destination(const wire::Message& head,
                                                      std::size_t length) {
    (void)head;
    (void)length;
    return {};
  }
  // The connection is closed (by either side, by an error, by a protocol violation or by
  // silence); called once, on the io thread, after which the connection calls nothing more.
  virtual void on_closed(const std::string& reason) = 0;
};

// What became of a URB's frames when its sender withdrew them (see Connection::withdraw).
enum class Withdrawn {
  NotSent,      // nothing of the URB had been written: the peer never saw it
  PartlySent,   // its header was written but payload pieces were dropped
  AlreadySent,  // everything was already written (or it was never queued)
};

class Connection {
 public:
  virtual ~Connection() = default;

  // Starts reading and the heartbeat timer. Call once, after the handler is ready.
  virtual void start() = 0;

  // Queues a message; its payload (if any) is copied. Returns false if the connection is
  // closed. Thread-safe.
  virtual bool send(const wire::Message& message) = 0;

  // Queues a URB_SUBMIT or URB_COMPLETE whose payload view is the WHOLE payload: it is split
  // into pieces, and the bytes are not copied. `keepalive` is held until the bytes are written;
  // a sender that passes none guarantees that the payload outlives the frames, and must call
  // withdraw() before the payload dies if they may not have been written. Thread-safe.
  virtual bool send_urb(wire::Message urb, std::shared_ptr<const void> keepalive) = 0;

  // Removes whatever of `trans_id`'s frames is still queued. Thread-safe. After it returns the
  // connection holds no reference to that URB's payload.
  virtual Withdrawn withdraw(std::uint32_t trans_id) = 0;

  // Adopts the peer's heartbeat interval from its HELLO: the peer is dead after three of them
  // without a frame (0 keeps the configured bound).
  virtual void set_peer_heartbeat(std::chrono::milliseconds interval) = 0;

  // Closes the connection: queued frames are dropped, the handler's on_closed runs on the io
  // thread. Thread-safe; later calls do nothing.
  virtual void close(const std::string& reason) = 0;
  // Closes once every frame queued so far is written (within `grace`; then closes anyway).
  // Thread-safe.
  virtual void close_when_sent(const std::string& reason, std::chrono::milliseconds grace) = 0;

  virtual bool is_open() const = 0;
  virtual const std::string& peer_name() const = 0;

  // The socket, for a thread that wants to poll() it (-1 once closed). The descriptor stays
  // valid (shut down, not closed) for as long as the connection object exists.
  virtual int native_handle() const = 0;
  // A thread about to poll() the socket and call service() claims it: while claims keep
  // coming, the io thread leaves the socket alone, so the two never wake for the same bytes.
  // Thread-safe.
  virtual void claim_reading() = 0;
  virtual void release_reading() = 0;
  // What a claiming thread polls for: POLLIN, and POLLOUT while frames wait for room in the
  // socket.
  virtual short poll_events() const = 0;
  // Acts on what poll() reported, on the calling thread: reads and handles whatever has arrived
  // (waiting for another reader to finish first), and writes what waited for room. Thread-safe.
  virtual void service(short revents) = 0;
  // The calling thread is about to wait for an answer that it will not read itself: makes sure
  // that some thread reads the socket. Thread-safe.
  virtual void expect_answer() = 0;

  // Batching: between cork() and uncork(), frames this thread sends are queued and go out
  // together at uncork() (one system call for a burst of completions or resubmissions).
  // Other threads' frames are not held back. Nested calls are counted.
  virtual void cork() = 0;
  virtual void uncork() = 0;
};

// A connection over an already connected TCP socket. The handler is kept alive until on_closed
// has run.
std::shared_ptr<Connection> make_tcp_connection(boost::asio::ip::tcp::socket socket,
                                                std::shared_ptr<ConnectionHandler> handler,
                                                ConnectionOptions options);

}  // namespace usbnet::transport
