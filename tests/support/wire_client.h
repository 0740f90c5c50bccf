// A blocking test client that speaks the wire protocol over a real TCP connection, for driving
// the agent message by message (and sending it garbage).
#pragma once

#include <chrono>
#include <deque>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "usbnet/wire.h"

namespace usbnet::security {
class KeyPair;
}
namespace usbnet::transport {
class ByteChannel;
}

namespace usbnet::test {

// A received message together with the frame its payload views point into.
struct Received {
  wire::Bytes frame;
  wire::Message message;

  template <typename T>
  const T* as() const {
    return std::get_if<T>(&message);
  }
};

class WireClient {
 public:
  // `host`: an IPv4 or IPv6 address.
  explicit WireClient(std::uint16_t port, const char* host = "127.0.0.1");
  // Over TLS, presenting `key` (as the shim does with the user's client_key); the agent's key
  // is not checked (the tests' agents run on this machine). Throws if the handshake fails; a
  // client the agent refuses finds the connection closed at its first receive.
  struct Tls {
    const security::KeyPair& key;
  };
  WireClient(std::uint16_t port, Tls tls);
  // Takes over a connected socket (the accepted side, for a test that plays the agent).
  struct Adopt {
    int fd;
  };
  explicit WireClient(Adopt connected);
  ~WireClient();
  WireClient(const WireClient&) = delete;
  WireClient& operator=(const WireClient&) = delete;

  void send(const wire::Message& message);
  void send_raw(wire::ByteView bytes);
  // Sends what the peer takes within `timeout` (never blocking past it): the number of bytes
  // sent, all of them unless the peer stopped reading or the connection failed.
  std::size_t send_some(wire::ByteView bytes, std::chrono::milliseconds timeout);
  // The next message (heartbeats are counted, not returned); nullopt on timeout or when the
  // agent closed the connection.
  std::optional<Received> receive(std::chrono::milliseconds timeout = std::chrono::seconds(5));
  // The next message with this id (others that arrive first are kept for later receives).
  std::optional<Received> receive_id(std::uint32_t id,
                                     std::chrono::milliseconds timeout = std::chrono::seconds(5));
  // Waits until the agent closes the connection; false if it is still open after `timeout`.
  bool wait_closed(std::chrono::milliseconds timeout = std::chrono::seconds(5));
  int heartbeats() const { return heartbeats_; }

  // HELLO exchange; returns the agent's HELLO.
  wire::Hello handshake(std::uint32_t heartbeat_ms = 5000);
  // Sends a request and returns its answer (REPLY or ERROR): value, or the error code.
  Expected<std::uint32_t, std::int32_t> request(wire::Message request);
  // The text of the last ERROR that request() returned.
  const std::string& last_error_text() const { return last_error_text_; }
  // LIST_DEVICES.
  std::vector<wire::DeviceInfo> list();
  std::uint32_t next_id() { return ++last_id_; }
  void close();

 private:
  bool read_some(std::chrono::milliseconds timeout);
  // Over TLS: moves what the channel takes; false once the connection failed.
  bool write_tls(wire::ByteView bytes, std::chrono::steady_clock::time_point deadline,
                 std::size_t& sent);

  int fd_ = -1;
  std::unique_ptr<transport::ByteChannel> tls_;  // owns fd_ when set
  bool peer_closed_ = false;
  wire::StreamDecoder decoder_;
  std::deque<Received> inbox_;
  int heartbeats_ = 0;
  std::uint32_t last_id_ = 100;
  std::string last_error_text_;
};

// The records that are not hubs (the agent lists the hubs above its devices as topology).
inline std::vector<wire::DeviceInfo> without_hubs(std::vector<wire::DeviceInfo> devices) {
  std::erase_if(devices, [](const wire::DeviceInfo& d) { return d.device_descriptor[4] == 0x09; });
  return devices;
}

}  // namespace usbnet::test
