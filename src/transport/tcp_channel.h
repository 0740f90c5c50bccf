// The byte channel of a plain TCP connection (see byte_channel.h for the contract).
#pragma once

#include <cstdint>

#include "transport/byte_channel.h"

namespace usbnet::transport {

class TcpChannel final : public ByteChannel {
 public:
  // Takes over `connected_socket` and sets usbnet's options on it: TCP_NODELAY, a small unsent
  // backlog (TCP_NOTSENT_LOWAT, two pieces of `piece_size`), Reno on loopback, close-on-exec and
  // non-blocking.
  TcpChannel(int connected_socket, std::uint32_t piece_size);
  ~TcpChannel() override;
  TcpChannel(const TcpChannel&) = delete;
  TcpChannel& operator=(const TcpChannel&) = delete;

  IoResult handshake() override { return IoResult::done(0); }
  IoResult read(std::span<std::uint8_t> into) override;
  IoResult read_into(std::span<std::uint8_t> first, std::span<std::uint8_t> then) override;
  IoResult write(std::span<const iovec> from) override;
  bool has_buffered_input() const override { return false; }
  void shutdown() override;
  int pollable_fd() const override { return fd_; }

 private:
  const int fd_;
};

}  // namespace usbnet::transport
