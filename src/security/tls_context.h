// TLS 1.3 with the keys of key_line.h, no certificate authority needed: each side presents a
// self-signed certificate made in memory from its Ed25519 key, and judges the other's by its
// public key (authorized_clients, known_agents), in the handshake. An agent may also accept
// certificates that an organisation's CA issued (--client-ca), and a client may present one
// (client_cert.pem beside its key).
//
// TlsContext: one per process and role (OpenSSL's SSL_CTX). TlsSession: one connection's
// OpenSSL state and the verdict on its peer; the transport's TlsChannel drives it.
#pragma once

#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "security/ed25519_key.h"
#include "security/key_line.h"
#include "usbnet/expected.h"

typedef struct ssl_st SSL;
typedef struct ssl_ctx_st SSL_CTX;

namespace usbnet::security {

enum class TlsRole { Server, Client };

// What the peer's certificate shows, for the verifier.
struct PeerCertificate {
  std::optional<PublicKey> key;       // its Ed25519 key (none: another key type)
  std::string fingerprint;            // SHA256:... of the Ed25519 key, or of another key's DER
  std::string subject;                // the certificate's common name
  bool issued_by_trusted_ca = false;  // it chains to the configured CA (--client-ca)
};

// Who the peer is, once accepted.
struct PeerIdentity {
  enum class Trust {
    AuthorizedKey,   // a client in authorized_clients
    OrganisationCa,  // a client whose certificate the configured CA issued
    PairingOnly,     // an unknown client let in to pair while a pairing code is valid
    PinnedAgent,     // the agent key pinned in known_agents
    NewAgent,        // an agent not pinned yet (usbnet pair)
  };
  Trust trust = Trust::AuthorizedKey;
  std::optional<PublicKey> key;
  std::string fingerprint;
  std::string name;  // the key's comment, or the certificate's common name
  // The organisation's CA issued its certificate (--client-ca): it stays admitted without an
  // authorized_clients line.
  bool ca_issued = false;
};

struct Verdict {
  std::optional<PeerIdentity> accepted;
  std::string refusal;  // when refused: one sentence for the log or the user

  static Verdict accept(PeerIdentity identity) { return {std::move(identity), {}}; }
  static Verdict refuse(std::string why) { return {std::nullopt, std::move(why)}; }
};
using PeerVerifier = std::function<Verdict(const PeerCertificate&)>;

struct TlsOptions {
  std::filesystem::path client_ca;     // server: also accept clients this CA issued certificates to
  std::filesystem::path certificate;   // present this (PEM, for `key`) instead of a self-signed one
  std::string common_name = "usbnet";  // of the self-signed certificate
};

class TlsContext {
 public:
  static Expected<std::shared_ptr<TlsContext>, std::string> create(TlsRole role, const KeyPair& key,
                                                                   const TlsOptions& options = {});
  ~TlsContext();
  TlsContext(const TlsContext&) = delete;
  TlsContext& operator=(const TlsContext&) = delete;

  TlsRole role() const { return role_; }
  const PublicKey& own_key() const { return own_key_; }
  bool has_client_ca() const { return has_client_ca_; }
  SSL_CTX* get() const { return ctx_; }

 private:
  TlsContext(TlsRole role, SSL_CTX* ctx, PublicKey own_key, bool has_client_ca)
      : role_(role), ctx_(ctx), own_key_(own_key), has_client_ca_(has_client_ca) {}

  TlsRole role_;
  SSL_CTX* ctx_;
  PublicKey own_key_;
  bool has_client_ca_;
};

class TlsSession {
 public:
  TlsSession(std::shared_ptr<const TlsContext> context, PeerVerifier verifier);
  ~TlsSession();
  TlsSession(const TlsSession&) = delete;
  TlsSession& operator=(const TlsSession&) = delete;

  SSL* ssl() const { return ssl_; }
  TlsRole role() const { return context_->role(); }
  const TlsContext& context() const { return *context_; }
  // Set during the handshake, once the verifier accepted the peer.
  const std::optional<PeerIdentity>& peer() const { return peer_; }
  // Set when the verifier refused the peer.
  const std::string& refusal() const { return refusal_; }
  // A sentence for an SSL call that failed (OpenSSL's error queue is read and emptied): the
  // verifier's refusal, the peer's refusal of this side (its alert), or what went wrong.
  std::string failure_reason();

 private:
  friend struct TlsSessionAccess;  // the handshake's verification callback

  std::shared_ptr<const TlsContext> context_;
  PeerVerifier verifier_;
  SSL* ssl_;
  std::optional<PeerIdentity> peer_;
  std::string refusal_;
};

}  // namespace usbnet::security
