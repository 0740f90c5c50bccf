// An Ed25519 key pair held by OpenSSL: the identity of an agent or of a client user.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "security/key_line.h"
#include "usbnet/expected.h"

typedef struct evp_pkey_st EVP_PKEY;

namespace usbnet::security {

class KeyPair {
 public:
  static Expected<KeyPair, std::string> generate();
  // From the PEM text of a PKCS#8 private key; `origin` names it in the error.
  static Expected<KeyPair, std::string> from_pem(std::string_view pem, const std::string& origin);

  std::string private_pem() const;
  const PublicKey& public_key() const { return public_; }
  EVP_PKEY* get() const { return key_.get(); }

 private:
  struct Free {
    void operator()(EVP_PKEY* key) const;
  };
  KeyPair(std::shared_ptr<EVP_PKEY> key, PublicKey public_key)
      : key_(std::move(key)), public_(public_key) {}

  std::shared_ptr<EVP_PKEY> key_;  // shared: contexts made from it keep it
  PublicKey public_;
};

// The raw public key of an OpenSSL key, if it is an Ed25519 one.
std::optional<PublicKey> ed25519_public_key(EVP_PKEY* key);

// The first error on OpenSSL's error queue as text (and the queue emptied), or `fallback`.
std::string openssl_error(std::string_view fallback);

}  // namespace usbnet::security
