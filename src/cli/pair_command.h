// usbnet pair HOST:PORT: trust on first use, with a fingerprint to compare. It opens a TLS
// connection to the agent only to see its key (in TLS 1.3 the client has the agent's
// certificate before the agent judges the client's), shows its fingerprint, pins it in
// known_agents once the user confirms (or with --yes), and prints this client's key line for
// the agent's authorized_clients.
//
// With a one-time code (--code, or typed when asked on a terminal) from `usbnet-agent pair`, it
// pairs in one step instead: each side proves that it knows the code, bound to both keys as
// the TLS connection shows them (docs/PROTOCOL.md, "Pairing"); the agent authorizes this
// client's key once this side's proof checks, and the agent's key is pinned once the agent's
// proof checks. Nothing is pinned otherwise.
#pragma once

#include <string>

namespace usbnet::cli {

struct PairRequest {
  std::string agent;     // HOST:PORT
  bool yes = false;      // pin without asking
  bool replace = false;  // replace a pinned key that differs
  std::string code;      // a pairing code from `usbnet-agent pair` (empty: none)
  unsigned timeout_ms = 3000;
};

int pair(const PairRequest& request);

}  // namespace usbnet::cli
