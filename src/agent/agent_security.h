// The agent's identity and its rule for clients: its key pair (created on first start in the
// state directory), the TLS context made from it, and the verifier that lets a TLS client in
// when its key is in authorized_clients (read again for every connection, so that a line
// appended there lets the client in at once) or, with --client-ca, when that CA issued its
// certificate. While a pairing code is waiting, a client with an unknown key is let in too, to
// pair and for nothing else (pairing_window.h).
#pragma once

#include <filesystem>
#include <memory>
#include <string>

#include "agent/pairing_window.h"
#include "security/paths.h"
#include "security/tls_context.h"
#include "usbnet/expected.h"

namespace usbnet::agent {

class AgentSecurity {
 public:
  // Loads the key in `state_dir` (creating the directory and the key when missing).
  static Expected<std::shared_ptr<AgentSecurity>, std::string> load(
      const std::filesystem::path& state_dir, const std::filesystem::path& client_ca);

  const security::PublicKey& key() const { return context_->own_key(); }
  bool key_created() const { return key_created_; }
  const security::AgentFiles& files() const { return files_; }
  // Pairing with a one-time code: one window for every connection.
  const std::shared_ptr<PairingWindow>& pairing() const { return pairing_; }
  // A new server-side TLS session that judges the client by the rule above.
  std::unique_ptr<security::TlsSession> new_session() const;
  // The verdict on a client's certificate (what new_session()'s verifier says).
  security::Verdict judge(const security::PeerCertificate& client) const;

 private:
  AgentSecurity(security::AgentFiles files, std::shared_ptr<security::TlsContext> context,
                bool created)
      : files_(files),
        context_(std::move(context)),
        pairing_(std::make_shared<PairingWindow>(std::move(files), context_->own_key())),
        key_created_(created) {}

  security::AgentFiles files_;
  std::shared_ptr<security::TlsContext> context_;
  std::shared_ptr<PairingWindow> pairing_;
  bool key_created_ = false;
};

}  // namespace usbnet::agent
