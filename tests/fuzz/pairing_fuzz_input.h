// What the pairing fuzzer (fuzz_pairing_hello.cpp) and its corpus writer agree on: the keys the
// TLS handshake presented, the code waiting in the agent's state directory, and the input's
// layout: one byte that says what the rest is.
#pragma once

#include <cstdint>
#include <string>

#include "security/key_line.h"

namespace usbnet::fuzz_pairing {

enum Input : std::uint8_t {
  kHelloBody = 0,  // a message body as the agent's session decodes it (a HELLO, auth_method 2)
  kRawProof = 1,   // the bytes of a HELLO's proof
  kCodeFile = 2,   // the pairing_code file in the state directory, then a proof of 32 bytes
};
inline constexpr int kInputKinds = 3;

// The code `usbnet-agent pair` wrote, in canonical form; it expires long after any run.
inline const std::string kCode = "ABCD-EFGH-JKMN-PQRS";
inline constexpr std::int64_t kExpiresAt = 4102444800;  // 2100-01-01

inline security::PublicKey key_of(std::uint8_t seed) {
  security::PublicKey key;
  for (std::size_t i = 0; i < key.bytes.size(); ++i) {
    key.bytes[i] = static_cast<std::uint8_t>(seed + i);
  }
  return key;
}
// The keys the handshake presented (HMAC takes any 32 bytes; they need not be curve points).
inline const security::PublicKey kClientKey = key_of(0x10);
inline const security::PublicKey kAgentKey = key_of(0xa0);

}  // namespace usbnet::fuzz_pairing
