#include "agent/agent_security.h"

#include <fmt/format.h>

#include "security/key_store.h"
#include "security/trust_files.h"

namespace usbnet::agent {

using security::PeerIdentity;
using security::Verdict;

namespace {

Verdict judge_client(const security::AgentFiles& files, const PairingWindow& pairing,
                     const security::PeerCertificate& client) {
  if (client.key) {
    auto authorized = security::AuthorizedClients::load(files.authorized_clients());
    if (!authorized) {
      // A file that cannot be read admits nobody by its keys (a half-read one would admit or
      // refuse by accident); the line says what to fix.
      return Verdict::refuse(authorized.error() + " (no key in it is accepted until it is fixed)");
    }
    if (const security::TrustedKey* found = authorized->find(*client.key)) {
      return Verdict::accept(PeerIdentity{PeerIdentity::Trust::AuthorizedKey, client.key,
                                          client.fingerprint, found->key.comment,
                                          client.issued_by_trusted_ca});
    }
  }
  if (client.issued_by_trusted_ca) {
    return Verdict::accept(PeerIdentity{PeerIdentity::Trust::OrganisationCa, client.key,
                                        client.fingerprint, client.subject, true});
  }
  if (client.key && pairing.code_waiting()) {
    return Verdict::accept(
        PeerIdentity{PeerIdentity::Trust::PairingOnly, client.key, client.fingerprint, "pairing"});
  }
  return Verdict::refuse(fmt::format("client key {} is not in {}", client.fingerprint,
                                     files.authorized_clients().string()));
}

}  // namespace

Expected<std::shared_ptr<AgentSecurity>, std::string> AgentSecurity::load(
    const std::filesystem::path& state_dir, const std::filesystem::path& client_ca) {
  security::AgentFiles files{state_dir};
  if (auto error = security::make_private_dir(state_dir)) return Unexpected{*error};
  // The key line's comment names the machine: "usbnet-agent@HOST".
  const std::string user_host = security::user_at_host("agent");
  const std::string host = user_host.substr(user_host.find('@') + 1);
  auto loaded = security::load_or_create_key(files.key(), "usbnet-agent@" + host);
  if (!loaded) return Unexpected{loaded.error()};
  security::TlsOptions options;
  options.client_ca = client_ca;
  options.common_name = "usbnet-agent";
  auto context = security::TlsContext::create(security::TlsRole::Server, loaded->key, options);
  if (!context) return Unexpected{context.error()};
  return std::shared_ptr<AgentSecurity>(
      new AgentSecurity(std::move(files), std::move(*context), loaded->created));
}

Verdict AgentSecurity::judge(const security::PeerCertificate& client) const {
  return judge_client(files_, *pairing_, client);
}

std::unique_ptr<security::TlsSession> AgentSecurity::new_session() const {
  return std::make_unique<security::TlsSession>(
      context_, [files = files_, pairing = pairing_](const security::PeerCertificate& client) {
        return judge_client(files, *pairing, client);
      });
}

}  // namespace usbnet::agent
