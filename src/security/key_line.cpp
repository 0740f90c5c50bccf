#include "security/key_line.h"

#include <openssl/evp.h>
#include <openssl/sha.h>

#include <fmt/format.h>

namespace usbnet::security {

namespace {

bool is_blank(char c) { return c == ' ' || c == '\t'; }

std::string_view trim(std::string_view s) {
  while (!s.empty() && (is_blank(s.front()) || s.front() == '\r' || s.front() == '\n')) {
    s.remove_prefix(1);
  }
  while (!s.empty() && (is_blank(s.back()) || s.back() == '\r' || s.back() == '\n')) {
    s.remove_suffix(1);
  }
  return s;
}

// The next blank-separated word of `rest`, which loses it.
std::string_view next_word(std::string_view& rest) {
  rest = trim(rest);
  std::size_t end = 0;
  while (end < rest.size() && !is_blank(rest[end])) ++end;
  const std::string_view word = rest.substr(0, end);
  rest.remove_prefix(end);
  return word;
}

bool is_base64_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
         c == '/';
}

}  // namespace

std::string base64_encode(const std::uint8_t* data, std::size_t length) {
  std::string out(4 * ((length + 2) / 3), '\0');
  const int n =
      EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()), data, static_cast<int>(length));
  out.resize(static_cast<std::size_t>(n));
  return out;
}

Expected<std::string, std::string> base64_decode(std::string_view text) {
  if (text.size() % 4 != 0) {
    return Unexpected{std::string("its length is not a multiple of four")};
  }
  std::size_t padding = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '=') {
      // Padding: one or two characters, at the very end.
      if (i + 2 < text.size() || (i + 2 == text.size() && text.back() != '=')) {
        return Unexpected{std::string("'=' before its end")};
      }
      ++padding;
    } else if (!is_base64_char(c) || padding > 0) {
      return Unexpected{fmt::format("'{}' is not a base64 character",
                                    static_cast<unsigned char>(c) < 0x20 ? '?' : c)};
    }
  }
  std::string out(3 * text.size() / 4, '\0');
  const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                reinterpret_cast<const unsigned char*>(text.data()),
                                static_cast<int>(text.size()));
  if (n < 0) return Unexpected{std::string("it is not base64")};
  out.resize(static_cast<std::size_t>(n) - padding);  // EVP_DecodeBlock counts the padding
  return out;
}

std::string PublicKey::fingerprint() const {
  std::uint8_t digest[SHA256_DIGEST_LENGTH];
  SHA256(bytes.data(), bytes.size(), digest);
  std::string b64 = base64_encode(digest, sizeof digest);
  while (!b64.empty() && b64.back() == '=') b64.pop_back();
  return "SHA256:" + b64;
}

std::string PublicKey::base64() const { return base64_encode(bytes.data(), bytes.size()); }

std::string KeyLine::to_string() const {
  std::string line = std::string(kKeyType) + " " + key.base64();
  if (!comment.empty()) line += " " + comment;
  return line;
}

Expected<KeyLine, std::string> parse_key_line(std::string_view line) {
  std::string_view rest = trim(line);
  if (rest.empty()) return Unexpected{std::string("the key line is empty")};
  for (char c : rest) {
    if (static_cast<unsigned char>(c) < 0x20 && c != '\t') {
      return Unexpected{std::string("the key line contains a control character")};
    }
  }
  const std::string_view type = next_word(rest);
  if (type != kKeyType) {
    const std::string shown(type.substr(0, 40));
    return Unexpected{fmt::format("'{}' is not a usbnet key type (a key line starts with '{}')",
                                  shown, kKeyType)};
  }
  const std::string_view encoded = next_word(rest);
  if (encoded.empty()) {
    return Unexpected{fmt::format("the key is missing after '{}'", kKeyType)};
  }
  auto raw = base64_decode(encoded);
  if (!raw) return Unexpected{"the key is not valid base64: " + raw.error()};
  if (raw->size() != kPublicKeyLength) {
    return Unexpected{fmt::format("the key has {} bytes, an Ed25519 public key has {}", raw->size(),
                                  kPublicKeyLength)};
  }
  KeyLine parsed;
  std::copy(raw->begin(), raw->end(), parsed.key.bytes.begin());
  parsed.comment = std::string(trim(rest));
  return parsed;
}

}  // namespace usbnet::security
