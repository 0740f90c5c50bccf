// Pairing with a one-time code: `usbnet-agent pair` writes a code into the agent's state
// directory, the user types it into `usbnet pair HOST --code CODE`, and each side proves that it
// knows the code with an HMAC-SHA256, keyed by the code, over both public keys as this TLS
// connection presented them (so a man in the middle, whose key differs, cannot reuse a proof):
//
//   client proof = HMAC(code, "usbnet pair client" || client key || agent key)
//   agent proof  = HMAC(code, "usbnet pair agent" || agent key || client key)
//
// The code has 80 bits (16 characters of Crockford's base32, in groups of four), so that a proof
// seen by a man in the middle cannot be searched for the code while it is valid; the agent also
// limits the attempts online (agent/pairing_window.h).
#pragma once

#include <array>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "security/key_line.h"
#include "usbnet/expected.h"

namespace usbnet::security {

using PairingProof = std::array<std::uint8_t, 32>;

// A new random code, "XXXX-XXXX-XXXX-XXXX".
std::string generate_pairing_code();
// The code as typed (lower case, without dashes, O for 0 and I or L for 1 accepted) in its
// canonical form, or nullopt if it cannot be a code.
std::optional<std::string> normalize_pairing_code(std::string_view typed);

PairingProof client_pairing_proof(std::string_view code, const PublicKey& client,
                                  const PublicKey& agent);
PairingProof agent_pairing_proof(std::string_view code, const PublicKey& agent,
                                 const PublicKey& client);
// Constant time.
bool proofs_equal(const PairingProof& a, const PairingProof& b);

// The code file in the agent's state directory: the code and when it expires.
struct PairingCode {
  std::string code;             // canonical
  std::int64_t expires_at = 0;  // seconds since the epoch
};
std::optional<std::string> write_pairing_code(const std::filesystem::path& path,
                                              const PairingCode& code);
// nullopt: there is none.
Expected<std::optional<PairingCode>, std::string> read_pairing_code(
    const std::filesystem::path& path);
void remove_pairing_code(const std::filesystem::path& path);

}  // namespace usbnet::security
