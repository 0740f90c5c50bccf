// The byte channel of an accepted connection: TLS or plain usbnet, told apart by the client's
// first bytes, before anything is answered.
//
// A TLS connection starts with a handshake record, 0x16 then the major version 0x03 then a
// minor version of at least 1 (a ClientHello of TLS 1.0 to 1.3 says 0x0301). Plain usbnet starts
// with a frame's length (little-endian u32), and a frame the agent accepts before HELLO is at
// most a few KiB long: its third byte is 0. So three bytes decide: 16 03 01..ff is TLS,
// anything else plain usbnet. They are read (not peeked, which would leave the socket readable
// and the io thread spinning on a client that sends one byte and stops), then handed to the
// channel chosen.
//
// A plain client of an agent that requires TLS gets one ERROR frame saying so, in plain usbnet
// (which it understands), and the connection ends. A TLS client is judged by the agent's
// verifier (agent_security.h) in the handshake; one it refuses gets a TLS alert and nothing
// else.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "agent/agent_security.h"
#include "agent/client_identity.h"
#include "transport/byte_channel.h"

namespace usbnet::transport {
class TlsChannel;
}

namespace usbnet::agent {

class IncomingChannel final : public transport::ByteChannel {
 public:
  // Takes over `accepted_socket`. `plaintext_allowed`: plain usbnet clients are served (the
  // agent listens on loopback only, or runs --insecure). `identity` is filled in once the
  // handshake is done.
  IncomingChannel(int accepted_socket, std::uint32_t piece_size,
                  std::shared_ptr<const AgentSecurity> security, bool plaintext_allowed,
                  std::shared_ptr<ClientIdentity> identity);
  ~IncomingChannel() override;
  IncomingChannel(const IncomingChannel&) = delete;
  IncomingChannel& operator=(const IncomingChannel&) = delete;

  transport::IoResult handshake() override;
  transport::IoResult read(std::span<std::uint8_t> into) override;
  transport::IoResult write(std::span<const iovec> from) override;
  bool has_buffered_input() const override;
  bool has_pending_output() const override { return inner_ && inner_->has_pending_output(); }
  void shutdown() override;
  int pollable_fd() const override { return fd_; }

 private:
  transport::IoResult sniff();
  transport::IoResult refuse_plaintext();

  const int fd_;
  const std::uint32_t piece_size_;
  std::shared_ptr<const AgentSecurity> security_;
  const bool plaintext_allowed_;
  std::shared_ptr<ClientIdentity> identity_;
  std::vector<std::uint8_t> first_;  // the client's first bytes, until a channel takes them
  std::size_t first_offset_ = 0;     // plain usbnet: how many of them read() returned
  std::unique_ptr<transport::ByteChannel> inner_;  // chosen: owns the socket then
  transport::TlsChannel* tls_ = nullptr;           // inner_, when it is TLS
  bool handshake_done_ = false;
};

}  // namespace usbnet::agent
