// Who a client connection is, as far as the agent knows it: filled in by the connection's
// channel when its handshake is done, read by the session for its audit lines.
#pragma once

#include <optional>
#include <string>

#include "security/key_line.h"

namespace usbnet::agent {

struct ClientIdentity {
  bool tls = false;
  std::string fingerprint;  // SHA256:... of the key the client presented (TLS only)
  std::string name;         // the comment of its authorized_clients line, or its certificate's CN
  std::optional<security::PublicKey> key;  // its Ed25519 key (TLS only)
  bool pairing_only = false;               // an unknown key, let in while a pairing code is waiting
  bool ca_issued = false;  // --client-ca issued its certificate: admitted without a key line

  // "TLS, key SHA256:... (alice@laptop)" or "plaintext", for log lines.
  std::string describe() const {
    if (!tls) return "plaintext";
    if (pairing_only) return "TLS, key " + fingerprint + " (not authorized: pairing only)";
    return "TLS, key " + fingerprint + (name.empty() ? "" : " (" + name + ")");
  }
};

}  // namespace usbnet::agent
