// The client side of one agent: connection, handshake, device list, device requests and URBs.
// Used by libusbnet.so, by the `usbnet` command and by the tests.
//
// It owns one io thread (started by the constructor; nothing connects until asked), which reads
// the connection and runs every callback. Requests block the calling thread, bounded by a
// timeout; URBs are asynchronous. Losing the agent completes every URB in flight with NO_DEVICE,
// fails every request with NO_DEVICE, reports the devices as gone, and (if enabled) reconnects
// in the background with a growing delay. A handle whose URB the agent leaves unanswered past
// its timeout and grace is lost: its URBs end with NO_DEVICE, and so does every later call on it.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "client/client_security.h"
#include "client/urb_table.h"
#include "transport/asio_connection.h"
#include "transport/endpoint.h"
#include "usbnet/expected.h"
#include "usbnet/messages.h"

namespace usbnet::client {

struct ClientOptions {
  transport::Endpoint agent;
  std::string name = "usbnet-client";               // sent in HELLO, for the agent's logs
  std::chrono::milliseconds connect_timeout{3000};  // connect, handshake and device list
  std::chrono::milliseconds request_timeout{10000};
  // A URB whose timeout expires is cancelled at the agent, whose answer tells what the device
  // did; if it has not answered by timeout + grace, the URB's handle is lost (see
  // docs/PROTOCOL.md, "Timeouts over a broken link").
  std::chrono::milliseconds timeout_grace{1000};
  std::chrono::milliseconds heartbeat{5000};
  std::chrono::milliseconds dead_after{15000};
  std::uint32_t piece_size = wire::kDefaultPieceSize;
  bool reconnect = true;
  std::chrono::milliseconds reconnect_delay_min{500};
  std::chrono::milliseconds reconnect_delay_max{5000};
  // TLS or plaintext, asked at every connection attempt (client_security.h); none: plaintext.
  SecurityPolicy security;
  // Pairing (usbnet pair --code): the HELLO's authentication, made once the handshake has shown
  // the agent's key (the HELLO waits for it), and the judge of the agent's HELLO, whose error
  // ends the connection (the reason ensure_connected() gives).
  std::function<std::pair<wire::AuthMethod, wire::Bytes>()> hello_auth;
  std::function<std::optional<std::string>(const wire::Hello&)> judge_agent_hello;
};

// Called on the client's io thread.
class ClientListener {
 public:
  virtual ~ClientListener() = default;
  // `socket_fd`: the new connection's socket, for programs that poll it.
  virtual void on_connected(const std::vector<wire::DeviceInfo>& devices, int socket_fd) = 0;
  virtual void on_device_arrived(const wire::DeviceInfo& device) = 0;
  virtual void on_device_left(std::uint32_t device_id) = 0;
  // After every URB in flight has been completed with NO_DEVICE.
  virtual void on_disconnected(const std::string& reason) = 0;
};

class AgentClient {
 public:
  AgentClient(ClientOptions options, ClientListener* listener);
  ~AgentClient();
  AgentClient(const AgentClient&) = delete;
  AgentClient& operator=(const AgentClient&) = delete;

  // Makes sure the connection is ready (handshake done, device list received). Waits for an
  // attempt in progress or starts one, bounded by the connect timeout; while background
  // reconnection is pending it answers at once with the last failure. Thread-safe.
  std::optional<std::string> ensure_connected();
  bool is_connected() const;
  std::vector<wire::DeviceInfo> devices() const;
  std::uint32_t agent_capabilities() const;
  const ClientOptions& options() const { return options_; }

  // Sends a device request (OPEN ... KERNEL_DRIVER; its id is assigned here) and waits for the
  // REPLY value or the ERROR code. NO_DEVICE when not connected or lost meanwhile; IO when the
  // agent does not answer within the request timeout. Thread-safe.
  Expected<std::uint32_t, std::int32_t> request(wire::Message request);

  // Submits a URB (its trans_id is assigned here, and the URB is in the client's table before
  // it leaves). `submit.payload` is the whole OUT data and is not copied: it must stay valid
  // until `done` has run (or forget() has returned). IN data goes to `in`. `owner` (the
  // submitter's transfer; may be null) names the URB for cancel() and forget(). `done` runs on
  // the thread that reads the agent's answer, once, in submission order per endpoint. Returns
  // the trans_id, NO_DEVICE, or BUSY (the owner has a URB in flight already).
  Expected<std::uint32_t, std::int32_t> submit(wire::UrbSubmit submit, std::span<std::uint8_t> in,
                                               const void* owner, UrbDone done);
  // Asks for the owner's URB to end early; its `done` then reports CANCELLED (or the status it
  // reached first). False if it is not in flight, or a cancel was asked for already.
  bool cancel(const void* owner);
  // The owner is going away with its URB in flight: the URB is cancelled, its `done` never runs
  // and its buffers are never touched again, from the moment this returns.
  void forget(const void* owner);
  // Whether the owner's URB is in flight (its `done` has not run yet).
  bool in_flight(const void* owner) const;

  // For a thread that waits for URBs anyway (an event loop): a loan of the connection's stream,
  // whose descriptor it polls and whose answers it reads on its own thread, so that `done` runs
  // there without a hop through the io thread (see transport::AsioConnection). Empty when there
  // is no connection. The loan ends with the object.
  transport::AsioConnection::Loan lend_stream();
  // The connection's socket (-1 when there is none), for the program's list of descriptors.
  int socket_fd() const;
  // Batches this thread's URBs into one write (see transport::FramedStream::cork).
  void cork();
  void uncork();

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
  ClientOptions options_;
};

}  // namespace usbnet::client
