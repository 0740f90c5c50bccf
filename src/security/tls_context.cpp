#include "security/tls_context.h"

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <fmt/format.h>

namespace usbnet::security {

namespace {

int session_index() {
  static const int index = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return index;
}

using UniqueX509 = std::unique_ptr<X509, decltype(&X509_free)>;

// A certificate for `key`, signed by itself: all TLS needs to carry the key.
Expected<UniqueX509, std::string> self_signed(const KeyPair& key, const std::string& common_name) {
  UniqueX509 cert(X509_new(), &X509_free);
  if (!cert) return Unexpected{std::string("out of memory")};
  std::uint64_t serial = 0;
  RAND_bytes(reinterpret_cast<unsigned char*>(&serial), sizeof serial);
  ASN1_INTEGER_set_uint64(X509_get_serialNumber(cert.get()), serial >> 1);
  X509_set_version(cert.get(), 2);  // v3
  // Validity does not matter (the key is what is trusted), but it must cover now.
  X509_gmtime_adj(X509_getm_notBefore(cert.get()), -24 * 3600);
  X509_gmtime_adj(X509_getm_notAfter(cert.get()), 100L * 365 * 24 * 3600);
  X509_NAME* name = X509_get_subject_name(cert.get());
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8,
                             reinterpret_cast<const unsigned char*>(common_name.c_str()), -1, -1,
                             0);
  X509_set_issuer_name(cert.get(), name);
  if (X509_set_pubkey(cert.get(), key.get()) != 1 ||
      X509_sign(cert.get(), key.get(), nullptr) == 0) {  // Ed25519 takes no digest
    return Unexpected{"cannot make the certificate: " + openssl_error("unknown error")};
  }
  return cert;
}

std::string common_name_of(X509* cert) {
  X509_NAME* name = X509_get_subject_name(cert);
  const int index = name ? X509_NAME_get_index_by_NID(name, NID_commonName, -1) : -1;
  if (index < 0) return {};
  ASN1_STRING* value = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, index));
  unsigned char* utf8 = nullptr;
  const int length = ASN1_STRING_to_UTF8(&utf8, value);
  if (length < 0) return {};
  std::string out(reinterpret_cast<char*>(utf8), static_cast<std::size_t>(length));
  OPENSSL_free(utf8);
  // For log lines: no control characters.
  for (char& c : out) {
    if (static_cast<unsigned char>(c) < 0x20) c = '?';
  }
  return out;
}

// The fingerprint of a key that is not Ed25519: SHA-256 of its DER encoding.
std::string der_fingerprint(EVP_PKEY* key) {
  unsigned char* der = nullptr;
  const int length = i2d_PUBKEY(key, &der);
  if (length <= 0) return "unknown";
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned digest_length = 0;
  EVP_Digest(der, static_cast<std::size_t>(length), digest, &digest_length, EVP_sha256(), nullptr);
  OPENSSL_free(der);
  std::string b64 = base64_encode(digest, digest_length);
  while (!b64.empty() && b64.back() == '=') b64.pop_back();
  return "SHA256:" + b64;
}

bool is_refusal_alert(int reason) {
  switch (reason) {
    case SSL_R_SSLV3_ALERT_BAD_CERTIFICATE:
    case SSL_R_SSLV3_ALERT_CERTIFICATE_UNKNOWN:
    case SSL_R_SSLV3_ALERT_UNSUPPORTED_CERTIFICATE:
    case SSL_R_TLSV1_ALERT_UNKNOWN_CA:
    case SSL_R_TLSV1_ALERT_ACCESS_DENIED:
    case SSL_R_TLSV13_ALERT_CERTIFICATE_REQUIRED:
    case SSL_R_SSLV3_ALERT_HANDSHAKE_FAILURE:
      return true;
    default:
      return false;
  }
}

bool is_not_tls(int reason) {
  switch (reason) {
    case SSL_R_WRONG_VERSION_NUMBER:
    case SSL_R_PACKET_LENGTH_TOO_LONG:
    case SSL_R_RECORD_LENGTH_MISMATCH:
    case SSL_R_HTTP_REQUEST:
    case SSL_R_UNEXPECTED_RECORD:
      return true;
    default:
      return false;
  }
}

}  // namespace

// The handshake's certificate check (SSL_CTX_set_cert_verify_callback): the whole verdict is
// the session's verifier's; OpenSSL's chain verification only answers whether the CA issued it.
struct TlsSessionAccess {
  static int verify(X509_STORE_CTX* store, void*) {
    SSL* ssl =
        static_cast<SSL*>(X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx()));
    auto* session = ssl ? static_cast<TlsSession*>(SSL_get_ex_data(ssl, session_index())) : nullptr;
    X509* leaf = X509_STORE_CTX_get0_cert(store);
    if (!session || !leaf) return 0;
    PeerCertificate certificate;
    EVP_PKEY* key = X509_get0_pubkey(leaf);
    certificate.key = ed25519_public_key(key);
    certificate.fingerprint =
        certificate.key ? certificate.key->fingerprint() : der_fingerprint(key);
    certificate.subject = common_name_of(leaf);
    if (session->context_->has_client_ca()) {
      certificate.issued_by_trusted_ca = X509_verify_cert(store) == 1;
      ERR_clear_error();
    }
    Verdict verdict = session->verifier_(certificate);
    if (!verdict.accepted) {
      session->refusal_ = verdict.refusal;
      // CERT_REJECTED: the peer hears "bad certificate".
      X509_STORE_CTX_set_error(store, X509_V_ERR_CERT_REJECTED);
      return 0;
    }
    session->peer_ = std::move(verdict.accepted);
    X509_STORE_CTX_set_error(store, X509_V_OK);
    return 1;
  }
};

Expected<std::shared_ptr<TlsContext>, std::string> TlsContext::create(TlsRole role,
                                                                      const KeyPair& key,
                                                                      const TlsOptions& options) {
  SSL_CTX* ctx = SSL_CTX_new(role == TlsRole::Server ? TLS_server_method() : TLS_client_method());
  if (!ctx) return Unexpected{"cannot set up TLS: " + openssl_error("unknown error")};
  std::shared_ptr<TlsContext> context(
      new TlsContext(role, ctx, key.public_key(), !options.client_ca.empty()));
  auto fail = [&](const std::string& what) {
    return Unexpected{fmt::format("{}: {}", what, openssl_error("unknown error"))};
  };
  SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
  SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
  // Every connection does a full handshake: nothing to resume, no ticket to keep.
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_num_tickets(ctx, 0);
  SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET | SSL_OP_IGNORE_UNEXPECTED_EOF);
  // Read what the socket has in one go, not record by record.
  SSL_CTX_set_read_ahead(ctx, 1);
  SSL_CTX_set_default_read_buffer_len(ctx, 64 * 1024);
  if (!options.certificate.empty()) {
    if (SSL_CTX_use_certificate_chain_file(ctx, options.certificate.c_str()) != 1) {
      return fail("cannot use the certificate " + options.certificate.string());
    }
  } else {
    auto cert = self_signed(key, options.common_name);
    if (!cert) return Unexpected{cert.error()};
    if (SSL_CTX_use_certificate(ctx, cert->get()) != 1) return fail("cannot use the certificate");
  }
  if (SSL_CTX_use_PrivateKey(ctx, key.get()) != 1) return fail("cannot use the key");
  if (SSL_CTX_check_private_key(ctx) != 1) {
    return fail("the certificate " + options.certificate.string() + " is not for this key");
  }
  if (!options.client_ca.empty() &&
      SSL_CTX_load_verify_locations(ctx, options.client_ca.c_str(), nullptr) != 1) {
    return fail("cannot read the CA certificates in " + options.client_ca.string());
  }
  int mode = SSL_VERIFY_PEER;
  if (role == TlsRole::Server) mode |= SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
  SSL_CTX_set_verify(ctx, mode, nullptr);
  SSL_CTX_set_cert_verify_callback(ctx, &TlsSessionAccess::verify, nullptr);
  return context;
}

TlsContext::~TlsContext() { SSL_CTX_free(ctx_); }

TlsSession::TlsSession(std::shared_ptr<const TlsContext> context, PeerVerifier verifier)
    : context_(std::move(context)), verifier_(std::move(verifier)), ssl_(SSL_new(context_->get())) {
  if (!ssl_) return;
  SSL_set_ex_data(ssl_, session_index(), this);
  if (context_->role() == TlsRole::Server) {
    SSL_set_accept_state(ssl_);
  } else {
    SSL_set_connect_state(ssl_);
  }
}

TlsSession::~TlsSession() { SSL_free(ssl_); }

std::string TlsSession::failure_reason() {
  const unsigned long code = ERR_peek_last_error();
  const int reason = ERR_GET_REASON(code);
  const char* text = ERR_reason_error_string(code);
  const std::string openssl = text ? text : "";
  ERR_clear_error();
  if (!refusal_.empty()) return refusal_;
  const bool server = role() == TlsRole::Server;
  if (code != 0 && is_refusal_alert(reason)) {
    return server ? fmt::format("the client refused this agent's key ({})", openssl)
                  : fmt::format(
                        "the agent refused this client's key ({}): it lets in the keys of its "
                        "authorized_clients file (`usbnet key` prints this client's line)",
                        openssl);
  }
  if (code != 0 && is_not_tls(reason)) {
    return fmt::format("the {} does not speak TLS ({})", server ? "client" : "agent", openssl);
  }
  if (reason == SSL_R_UNSUPPORTED_PROTOCOL || reason == SSL_R_NO_PROTOCOLS_AVAILABLE ||
      reason == SSL_R_TLSV1_ALERT_PROTOCOL_VERSION) {
    return fmt::format("the {} does not speak TLS 1.3 ({})", server ? "client" : "agent", openssl);
  }
  return openssl.empty() ? std::string("TLS failed") : "TLS failed: " + openssl;
}

}  // namespace usbnet::security
