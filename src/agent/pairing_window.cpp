#include "agent/pairing_window.h"

#include <fmt/format.h>

#include <algorithm>
#include <ctime>

#include "security/trust_files.h"

namespace usbnet::agent {

using namespace wire::error_code;

namespace {

constexpr const char* kMakeOne = "run `usbnet-agent pair` on the agent's machine for a new one";

bool expired(const security::PairingCode& code) {
  return static_cast<std::int64_t>(std::time(nullptr)) >= code.expires_at;
}

}  // namespace

bool PairingWindow::code_waiting() const {
  auto code = security::read_pairing_code(files_.pairing_code());
  return code && *code;
}

std::variant<PairingWindow::Paired, PairingWindow::Refused> PairingWindow::attempt(
    const security::PublicKey& client_key, const wire::Bytes& proof, const std::string& comment) {
  std::lock_guard lock(mutex_);
  const auto now = Clock::now();
  if (now < held_off_until_) {
    const auto wait = std::chrono::ceil<std::chrono::seconds>(held_off_until_ - now).count();
    return Refused{kBusy, fmt::format("a wrong pairing code was tried: pairing is refused for "
                                      "{} s more, then try again",
                                      wait)};
  }
  auto read = security::read_pairing_code(files_.pairing_code());
  if (!read) return Refused{kAccess, read.error()};
  if (!*read) {
    return Refused{kAccess, fmt::format("no pairing code is waiting on this agent (none was made, "
                                        "or it was used or forgotten): {}",
                                        kMakeOne)};
  }
  const security::PairingCode code = **read;
  if (expired(code)) {
    security::remove_pairing_code(files_.pairing_code());
    return Refused{kAccess, fmt::format("the pairing code has expired: {}", kMakeOne)};
  }
  if (code.code != counted_code_) {
    // A new code (`usbnet-agent pair` again): its own count of wrong attempts.
    counted_code_ = code.code;
    wrong_ = 0;
  }
  security::PairingProof given{};
  const bool sized = proof.size() == given.size();
  if (sized) std::copy(proof.begin(), proof.end(), given.begin());
  const auto expected = security::client_pairing_proof(code.code, client_key, agent_key_);
  if (!sized || !security::proofs_equal(given, expected)) {
    ++wrong_;
    if (wrong_ >= kMaxWrongPairingCodes) {
      security::remove_pairing_code(files_.pairing_code());
      counted_code_.clear();
      wrong_ = 0;
      return Refused{kAccess, fmt::format("wrong pairing code; after {} wrong codes it is "
                                          "forgotten: {}",
                                          kMaxWrongPairingCodes, kMakeOne)};
    }
    const auto hold = std::chrono::seconds(1 << (wrong_ - 1));
    held_off_until_ = now + hold;
    return Refused{kAccess,
                   fmt::format("wrong pairing code: check it and try again in {} s ({} wrong "
                               "codes more and it is forgotten)",
                               hold.count(), kMaxWrongPairingCodes - wrong_)};
  }
  auto added = security::authorize_client(files_.authorized_clients(),
                                          security::KeyLine{client_key, comment});
  if (!added) return Refused{kIo, "paired, but the key could not be saved: " + added.error()};
  security::remove_pairing_code(files_.pairing_code());
  counted_code_.clear();
  wrong_ = 0;
  return Paired{security::agent_pairing_proof(code.code, agent_key_, client_key)};
}

}  // namespace usbnet::agent
