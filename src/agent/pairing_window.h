// The agent's side of pairing with a one-time code (docs/PROTOCOL.md, "Pairing"): whether a
// code is waiting (then the handshake lets an unknown key in, to pair and nothing else), and
// the check of a client's proof, which authorizes its key and answers with the agent's proof.
//
// Brute force is limited online, for every client at once: after a wrong code every attempt is
// refused for a time that doubles with each wrong code (1 s, 2 s, 4 s, ...), and the fifth
// wrong code forgets the code. A code is forgotten once used too, and when it has expired.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <variant>

#include "security/key_line.h"
#include "security/pairing.h"
#include "security/paths.h"
#include "usbnet/messages.h"

namespace usbnet::agent {

inline constexpr int kMaxWrongPairingCodes = 5;

class PairingWindow {
 public:
  struct Paired {
    security::PairingProof agent_proof;
  };
  struct Refused {
    std::int32_t code;  // for the ERROR: ACCESS, or BUSY while attempts are held off
    std::string text;
  };

  PairingWindow(security::AgentFiles files, security::PublicKey agent_key)
      : files_(std::move(files)), agent_key_(agent_key) {}

  // Whether a code is waiting (the code file is read each time). An expired one counts until a
  // client tries it, so that the client learns that it expired.
  bool code_waiting() const;
  // A client presenting `client_key` in TLS sent `proof`. Paired: its key is in
  // authorized_clients now (commented with `comment`), and the code is gone.
  std::variant<Paired, Refused> attempt(const security::PublicKey& client_key,
                                        const wire::Bytes& proof, const std::string& comment);

 private:
  using Clock = std::chrono::steady_clock;

  const security::AgentFiles files_;
  const security::PublicKey agent_key_;
  std::mutex mutex_;
  std::string counted_code_;  // the code the wrong attempts below were made against
  int wrong_ = 0;
  Clock::time_point held_off_until_{};
};

}  // namespace usbnet::agent
