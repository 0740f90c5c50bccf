// The byte channel of a TLS connection over TCP (see byte_channel.h for the contract): OpenSSL
// does the TLS (security::TlsSession, which also judges the peer in the handshake), this class
// moves its records through the socket without blocking.
//
// OpenSSL reads and writes through a BIO of this class's own, which never makes OpenSSL wait:
// reads say "retry" when the socket is empty (WouldBlock, readable); writes hand each record to
// the kernel at once and keep whatever part of it the kernel did not take (at most one record,
// because a write stops taking data as soon as something is kept). That tail goes out first at
// the next write, an empty one if need be (has_pending_output()). So a write never has to be
// repeated with the same bytes, as SSL_write otherwise demands, and the stream above may offer
// any frames next. Small frames are gathered into full records; large payloads are encrypted
// straight from their buffers, and decrypted straight into their destination.
//
// OpenSSL's session is not safe for a read and a write at once: a mutex serializes them (each
// holds it for one bounded step, never while waiting).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "security/tls_context.h"
#include "transport/byte_channel.h"
#include "transport/tcp_channel.h"

typedef struct bio_st BIO;

namespace usbnet::transport {

class TlsChannel final : public ByteChannel {
 public:
  // Takes over `connected_socket` (with the options TcpChannel sets) and speaks TLS over it in
  // the role of `session`'s context. `already_read`: bytes of the peer's that were read from
  // the socket before (to tell TLS from plain usbnet), which OpenSSL reads first.
  TlsChannel(int connected_socket, std::uint32_t piece_size,
             std::unique_ptr<security::TlsSession> session,
             std::vector<std::uint8_t> already_read = {});
  ~TlsChannel() override;
  TlsChannel(const TlsChannel&) = delete;
  TlsChannel& operator=(const TlsChannel&) = delete;

  IoResult handshake() override;
  IoResult read(std::span<std::uint8_t> into) override;
  IoResult write(std::span<const iovec> from) override;
  bool has_buffered_input() const override { return buffered_input_.load(); }
  bool has_pending_output() const override { return pending_output_.load(); }
  void shutdown() override;
  int pollable_fd() const override { return socket_.pollable_fd(); }

  // The session, with its verdict on the peer (once the handshake is done).
  const security::TlsSession& session() const { return *session_; }

 private:
  struct BioAccess;  // the BIO's callbacks

  // With mutex_.
  bool flush_unsent();  // false: some is still kept (or the socket failed: io_error_)
  IoResult failed();    // the connection is broken: why, in one sentence
  IoResult encrypt(const std::uint8_t* data, std::size_t length, std::size_t& total);
  void update_flags();

  TcpChannel socket_;
  const std::unique_ptr<security::TlsSession> session_;
  BIO* bio_ = nullptr;  // owned by the session's SSL

  std::mutex mutex_;                  // guards everything below, and the SSL object
  std::vector<std::uint8_t> unsent_;  // the tail of a record the kernel did not take
  std::size_t unsent_offset_ = 0;
  std::vector<std::uint8_t> staging_;  // small frames gathered into one record
  std::string io_error_;               // the socket failed
  bool peer_closed_ = false;
  bool fatal_ = false;                // OpenSSL failed: no close_notify
  std::optional<IoResult> deferred_;  // a failure after data, for the next read
  std::uint8_t first_bytes_[8] = {};  // what the peer sent first, to recognize plain usbnet
  std::size_t first_count_ = 0;
  std::vector<std::uint8_t> already_read_;  // read before this channel existed, for OpenSSL first
  std::size_t already_read_offset_ = 0;

  std::atomic<bool> buffered_input_{false};
  std::atomic<bool> pending_output_{false};
};

}  // namespace usbnet::transport
