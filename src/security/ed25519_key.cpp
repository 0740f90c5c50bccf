#include "security/ed25519_key.h"

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <fmt/format.h>

namespace usbnet::security {

std::string openssl_error(std::string_view fallback) {
  const unsigned long code = ERR_get_error();
  ERR_clear_error();
  if (code == 0) return std::string(fallback);
  const char* reason = ERR_reason_error_string(code);
  return reason ? reason : std::string(fallback);
}

void KeyPair::Free::operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }

std::optional<PublicKey> ed25519_public_key(EVP_PKEY* key) {
  if (!key || EVP_PKEY_id(key) != EVP_PKEY_ED25519) return std::nullopt;
  PublicKey out;
  std::size_t length = out.bytes.size();
  if (EVP_PKEY_get_raw_public_key(key, out.bytes.data(), &length) != 1 ||
      length != out.bytes.size()) {
    ERR_clear_error();
    return std::nullopt;
  }
  return out;
}

Expected<KeyPair, std::string> KeyPair::generate() {
  EVP_PKEY* raw = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
  if (!raw) return Unexpected{"cannot generate an Ed25519 key: " + openssl_error("unknown error")};
  std::shared_ptr<EVP_PKEY> key(raw, Free{});
  auto public_key = ed25519_public_key(raw);
  if (!public_key) return Unexpected{std::string("cannot read the new key's public half")};
  return KeyPair(std::move(key), *public_key);
}

Expected<KeyPair, std::string> KeyPair::from_pem(std::string_view pem, const std::string& origin) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(
      BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), &BIO_free);
  if (!bio) return Unexpected{origin + ": out of memory"};
  // No password callback: a usbnet key file is never encrypted, and OpenSSL must not prompt.
  EVP_PKEY* raw = PEM_read_bio_PrivateKey(
      bio.get(), nullptr, [](char*, int, int, void*) { return 0; }, nullptr);
  if (!raw) {
    return Unexpected{fmt::format("{}: not a usbnet key file (an Ed25519 private key in PEM): {}",
                                  origin, openssl_error("no key found"))};
  }
  std::shared_ptr<EVP_PKEY> key(raw, Free{});
  auto public_key = ed25519_public_key(raw);
  if (!public_key) {
    return Unexpected{fmt::format("{}: the key is not an Ed25519 key", origin)};
  }
  return KeyPair(std::move(key), *public_key);
}

std::string KeyPair::private_pem() const {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), &BIO_free);
  if (!bio ||
      PEM_write_bio_PrivateKey(bio.get(), key_.get(), nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    return {};
  }
  char* data = nullptr;
  const long length = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(length));
}

}  // namespace usbnet::security
