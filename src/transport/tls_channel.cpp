#include "transport/tls_channel.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include <algorithm>
#include <cstring>

#include "usbnet/protocol.h"

namespace usbnet::transport {

namespace {

// The largest record's plaintext: what one SSL_write turns into one record.
constexpr std::size_t kRecord = 16 * 1024;

}  // namespace

struct TlsChannel::BioAccess {
  static TlsChannel& of(BIO* bio) { return *static_cast<TlsChannel*>(BIO_get_data(bio)); }

  // The record goes to the kernel now; what it does not take is kept, and counts as written.
  static int write(BIO* bio, const char* data, std::size_t length, std::size_t* written) {
    TlsChannel& c = of(bio);
    BIO_clear_retry_flags(bio);
    const auto* bytes = reinterpret_cast<const std::uint8_t*>(data);
    std::size_t sent = 0;
    if (c.unsent_offset_ == c.unsent_.size()) {
      const iovec iov{const_cast<std::uint8_t*>(bytes), length};
      const IoResult result = c.socket_.write(std::span(&iov, 1));
      if (result.status == IoResult::Status::Failed) {
        c.io_error_ = result.error;
        return 0;
      }
      if (result.status == IoResult::Status::Done) sent = result.bytes;
    }
    c.unsent_.insert(c.unsent_.end(), bytes + sent, bytes + length);
    *written = length;
    return 1;
  }

  static int read(BIO* bio, char* data, std::size_t length, std::size_t* read_bytes) {
    TlsChannel& c = of(bio);
    BIO_clear_retry_flags(bio);
    if (c.already_read_offset_ < c.already_read_.size()) {
      const std::size_t n = std::min(length, c.already_read_.size() - c.already_read_offset_);
      std::memcpy(data, c.already_read_.data() + c.already_read_offset_, n);
      c.already_read_offset_ += n;
      *read_bytes = n;
      return 1;
    }
    const IoResult result =
        c.socket_.read(std::span(reinterpret_cast<std::uint8_t*>(data), length));
    switch (result.status) {
      case IoResult::Status::Done: {
        const std::size_t keep = std::min(result.bytes, sizeof c.first_bytes_ - c.first_count_);
        std::memcpy(c.first_bytes_ + c.first_count_, data, keep);
        c.first_count_ += keep;
        *read_bytes = result.bytes;
        return 1;
      }
      case IoResult::Status::WouldBlock:
        BIO_set_retry_read(bio);
        return 0;
      case IoResult::Status::Closed:
        c.peer_closed_ = true;
        return 0;
      case IoResult::Status::Failed:
        c.io_error_ = result.error;
        return 0;
    }
    return 0;
  }

  static long ctrl(BIO* bio, int command, long, void*) {
    switch (command) {
      case BIO_CTRL_FLUSH:
        return 1;
      case BIO_CTRL_EOF:
        return of(bio).peer_closed_ ? 1 : 0;
      default:
        return 0;
    }
  }

  static BIO_METHOD* method() {
    static BIO_METHOD* const m = [] {
      BIO_METHOD* made = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "usbnet socket");
      BIO_meth_set_write_ex(made, &write);
      BIO_meth_set_read_ex(made, &read);
      BIO_meth_set_ctrl(made, &ctrl);
      return made;
    }();
    return m;
  }
};

TlsChannel::TlsChannel(int connected_socket, std::uint32_t piece_size,
                       std::unique_ptr<security::TlsSession> session,
                       std::vector<std::uint8_t> already_read)
    : socket_(connected_socket, piece_size),
      session_(std::move(session)),
      already_read_(std::move(already_read)) {
  staging_.reserve(kRecord);
  if (!session_->ssl()) return;
  bio_ = BIO_new(BioAccess::method());
  if (!bio_) return;
  BIO_set_data(bio_, this);
  BIO_set_init(bio_, 1);
  SSL_set_bio(session_->ssl(), bio_, bio_);  // one BIO both ways: one reference, the SSL's
}

TlsChannel::~TlsChannel() = default;

bool TlsChannel::flush_unsent() {
  while (unsent_offset_ < unsent_.size()) {
    const iovec iov{unsent_.data() + unsent_offset_, unsent_.size() - unsent_offset_};
    const IoResult result = socket_.write(std::span(&iov, 1));
    if (result.status == IoResult::Status::Failed) io_error_ = result.error;
    if (result.status != IoResult::Status::Done || result.bytes == 0) return false;
    unsent_offset_ += result.bytes;
  }
  unsent_.clear();
  unsent_offset_ = 0;
  return true;
}

void TlsChannel::update_flags() {
  buffered_input_ = session_->ssl() && SSL_has_pending(session_->ssl()) == 1;
  pending_output_ = unsent_offset_ < unsent_.size();
}

IoResult TlsChannel::failed() {
  fatal_ = true;
  std::string why;
  static constexpr std::uint8_t kMagic[] = {0x00, 0x42, 0x53, 0x55};  // wire::kMagic, LE
  if (!io_error_.empty()) {
    why = io_error_;
    ERR_clear_error();
  } else if (first_count_ >= 8 && std::memcmp(first_bytes_ + 4, kMagic, 4) == 0) {
    // A usbnet frame in the clear: an agent (or client) that does not use TLS.
    ERR_clear_error();
    why = session_->role() == security::TlsRole::Client
              ? "the agent answered without TLS: it is an agent that does not speak TLS (an "
                "older one); reach it in plaintext (usbnet --insecure, USBNET_INSECURE=1) or "
                "through a tunnel"
              : "the client spoke without TLS";
  } else if (peer_closed_ && first_count_ == 0) {
    ERR_clear_error();
    why = "the peer closed the connection during the TLS handshake";
  } else if (peer_closed_ && ERR_peek_error() == 0 && session_->refusal().empty() &&
             session_->ssl() && SSL_is_init_finished(session_->ssl()) == 0) {
    // OpenSSL says no more than "TLS failed" of a peer that left in the middle of a record.
    why = "the peer closed the connection in the middle of the TLS handshake (a truncated record)";
  } else {
    why = session_->failure_reason();
  }
  update_flags();
  return IoResult::failed(why);
}

IoResult TlsChannel::handshake() {
  std::lock_guard lock(mutex_);
  SSL* ssl = session_->ssl();
  if (!ssl || !bio_) return IoResult::failed("cannot set up TLS: out of memory");
  if (!flush_unsent()) {
    return io_error_.empty() ? IoResult::would_block(kWritable) : failed();
  }
  ERR_clear_error();
  const int result = SSL_do_handshake(ssl);
  if (result == 1) {
    update_flags();
    // Its last flight must be out before data flows (the peer waits for it).
    if (pending_output_) return IoResult::would_block(kWritable);
    return IoResult::done(0);
  }
  switch (SSL_get_error(ssl, result)) {
    case SSL_ERROR_WANT_READ:
      update_flags();
      return IoResult::would_block(pending_output_ ? kWritable : kReadable);
    case SSL_ERROR_WANT_WRITE:
      return IoResult::would_block(kWritable);
    default:
      return failed();
  }
}

IoResult TlsChannel::read(std::span<std::uint8_t> into) {
  std::lock_guard lock(mutex_);
  if (deferred_) return *std::exchange(deferred_, std::nullopt);
  SSL* ssl = session_->ssl();
  std::size_t total = 0;
  std::optional<IoResult> end;
  // Several records per call: the stream reads once per readiness, and a record is 16 KiB.
  while (total < into.size()) {
    std::size_t n = 0;
    ERR_clear_error();
    if (SSL_read_ex(ssl, into.data() + total, into.size() - total, &n) == 1) {
      total += n;
      continue;
    }
    const int error = SSL_get_error(ssl, 0);
    if (error == SSL_ERROR_WANT_READ || error == SSL_ERROR_WANT_WRITE) break;
    end = error == SSL_ERROR_ZERO_RETURN ? IoResult::closed() : failed();
    break;
  }
  // A read may have produced output (an alert, a key update): it goes out with the next write.
  flush_unsent();
  update_flags();
  if (total > 0) {
    deferred_ = std::move(end);
    return IoResult::done(total);
  }
  if (end) return *end;
  return IoResult::would_block(kReadable);
}

// Encrypts one record's worth (with mutex_); `total` counts the plaintext taken.
IoResult TlsChannel::encrypt(const std::uint8_t* data, std::size_t length, std::size_t& total) {
  std::size_t written = 0;
  ERR_clear_error();
  if (SSL_write_ex(session_->ssl(), data, length, &written) != 1) return failed();
  total += written;
  return IoResult::done(total);
}

IoResult TlsChannel::write(std::span<const iovec> from) {
  std::lock_guard lock(mutex_);
  if (fatal_) return IoResult::failed("the TLS connection failed");
  if (!flush_unsent()) {
    update_flags();
    return io_error_.empty() ? IoResult::would_block(kWritable) : failed();
  }
  std::size_t total = 0;
  std::size_t index = 0;
  std::size_t offset = 0;  // within from[index]
  // Stops as soon as the kernel has left part of a record with this channel.
  while (index < from.size() && unsent_.empty()) {
    const auto* base = static_cast<const std::uint8_t*>(from[index].iov_base);
    const std::size_t left = from[index].iov_len - offset;
    if (left == 0) {
      ++index;
      offset = 0;
      continue;
    }
    if (left >= kRecord) {
      // A full record straight from the caller's buffer.
      if (IoResult r = encrypt(base + offset, kRecord, total); r.status != IoResult::Status::Done) {
        return r;
      }
      offset += kRecord;
      continue;
    }
    // Gather what is smaller than a record (frame heads, small messages, payload tails) into
    // one record.
    staging_.clear();
    while (index < from.size() && staging_.size() < kRecord) {
      const auto* b = static_cast<const std::uint8_t*>(from[index].iov_base);
      const std::size_t take = std::min(from[index].iov_len - offset, kRecord - staging_.size());
      staging_.insert(staging_.end(), b + offset, b + offset + take);
      offset += take;
      if (offset == from[index].iov_len) {
        ++index;
        offset = 0;
      }
    }
    if (IoResult r = encrypt(staging_.data(), staging_.size(), total);
        r.status != IoResult::Status::Done) {
      return r;
    }
  }
  update_flags();
  return IoResult::done(total);
}

void TlsChannel::shutdown() {
  {
    std::lock_guard lock(mutex_);
    SSL* ssl = session_->ssl();
    if (ssl && bio_ && !fatal_ && SSL_is_init_finished(ssl)) {
      // close_notify, if the kernel takes it now; the connection ends either way.
      ERR_clear_error();
      SSL_shutdown(ssl);
      flush_unsent();
      ERR_clear_error();
    }
    update_flags();
  }
  socket_.shutdown();
}

}  // namespace usbnet::transport
