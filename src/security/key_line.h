// Public keys as people handle them, SSH-style: one line "usbnet-ed25519 BASE64 comment" (the
// raw 32-byte Ed25519 key in base64, then free text that names its owner), and the fingerprint
// "SHA256:..." (the unpadded base64 of the key's SHA-256) that people compare.
#pragma once

#include <array>
#include <compare>
#include <cstdint>
#include <string>
#include <string_view>

#include "usbnet/expected.h"

namespace usbnet::security {

inline constexpr std::string_view kKeyType = "usbnet-ed25519";
inline constexpr std::size_t kPublicKeyLength = 32;

struct PublicKey {
  std::array<std::uint8_t, kPublicKeyLength> bytes{};

  std::string fingerprint() const;  // "SHA256:" and 43 characters
  std::string base64() const;
  auto operator<=>(const PublicKey&) const = default;
};

struct KeyLine {
  PublicKey key;
  std::string comment;  // may be empty

  std::string to_string() const;  // "usbnet-ed25519 BASE64 comment"
};

// Parses one key line (surrounding blanks allowed). The error is a sentence saying what is wrong
// with it, without the line itself (callers add where it came from).
Expected<KeyLine, std::string> parse_key_line(std::string_view line);

// Base64 (RFC 4648, with padding) of arbitrary bytes, and strict decoding: only the alphabet,
// padding only at the end, a length that is a multiple of four.
std::string base64_encode(const std::uint8_t* data, std::size_t length);
Expected<std::string, std::string> base64_decode(std::string_view text);

}  // namespace usbnet::security
