// The agent's identity and its rule for clients: its key pair (created on first start in the
// state directory), the TLS context made from it, and the verifier that lets a TLS client in
// when its key is in authorized_clients (read again for every connection, so that a line
// appended there lets the client in at once) or, with --client-ca, when that CA issued its
// certificate.
#pragma once

#include <filesystem>
#include <memory>
#include <string>

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
  // A new server-side TLS session that judges the client by the rule above.
  std::unique_ptr<security::TlsSession> new_session() const;
  // The verdict on a client's certificate (what new_session()'s verifier says).
  security::Verdict judge(const security::PeerCertificate& client) const;

 private:
  AgentSecurity(security::AgentFiles files, std::shared_ptr<security::TlsContext> context,
                bool created)
      : files_(std::move(files)), context_(std::move(context)), key_created_(created) {}

  security::AgentFiles files_;
  std::shared_ptr<security::TlsContext> context_;
  bool key_created_ = false;
};

}  // namespace usbnet::agent
