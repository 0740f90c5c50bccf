#include "client/client_security.h"

#include <arpa/inet.h>
#include <openssl/ssl.h>

#include <cstdlib>

#include <fmt/format.h>

#include "common/log.h"
#include "security/key_store.h"
#include "security/trust_files.h"

namespace usbnet::client {

namespace fs = std::filesystem;
using security::PeerIdentity;
using security::Verdict;

fs::path client_dir_from_environment() {
  if (const char* dir = std::getenv("USBNET_CONFIG_DIR"); dir && *dir) return dir;
  return security::client_config_dir();
}

bool is_loopback_host(const std::string& host) {
  if (host == "localhost" || host.ends_with(".localhost")) return true;
  in_addr v4{};
  if (::inet_pton(AF_INET, host.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
  in6_addr v6{};
  if (::inet_pton(AF_INET6, host.c_str(), &v6) == 1) {
    return IN6_IS_ADDR_LOOPBACK(&v6) || (IN6_IS_ADDR_V4MAPPED(&v6) && v6.s6_addr[12] == 127);
  }
  return false;
}

ClientTrust::ClientTrust(fs::path dir, bool insecure)
    : files_{std::move(dir)}, insecure_(insecure) {}

SecurityPolicy ClientTrust::policy(std::shared_ptr<ClientTrust> trust) {
  return
      [trust = std::move(trust)](const transport::Endpoint& agent) { return trust->decide(agent); };
}

Expected<std::shared_ptr<const security::TlsContext>, std::string> ClientTrust::context() {
  std::lock_guard lock(mutex_);
  if (context_) return context_;
  // OpenSSL is shared with the program the shim lives in, which may use it too: it initialises
  // itself (once, thread-safely) whoever comes first, and nothing here ever cleans it up. Its
  // clean-up at exit is turned off if this is the first use, because the client's io thread
  // may still be in a TLS call while the program's exit handlers run.
  OPENSSL_init_ssl(OPENSSL_INIT_NO_ATEXIT, nullptr);
  auto loaded = security::load_or_create_key(files_.key(), security::user_at_host("usbnet-client"));
  if (!loaded) return Unexpected{loaded.error()};
  if (loaded->created) {
    log::info("created this client's key {} in {}", loaded->key.public_key().fingerprint(),
              files_.key().string());
  }
  security::TlsOptions options;
  options.common_name = "usbnet-client";
  // A certificate of the organisation's CA for this key, if there is one (--client-ca agents).
  const fs::path certificate = files_.dir / "client_cert.pem";
  std::error_code ec;
  if (fs::exists(certificate, ec)) options.certificate = certificate;
  auto made = security::TlsContext::create(security::TlsRole::Client, loaded->key, options);
  if (!made) return Unexpected{made.error()};
  context_ = *made;
  return context_;
}

Expected<security::KeyLine, std::string> ClientTrust::key_line() {
  auto made = context();
  if (!made) return Unexpected{made.error()};
  auto text = security::read_small_file(files_.key().string() + ".pub", 4096);
  std::string comment = security::user_at_host("usbnet-client");
  if (text && *text) {
    if (auto line = security::parse_key_line(**text); line && line->key == (*made)->own_key()) {
      comment = line->comment;
    }
  }
  return security::KeyLine{(*made)->own_key(), comment};
}

ConnectDecision ClientTrust::decide(const transport::Endpoint& agent) {
  if (insecure_) return std::optional<ChannelSecurity>{};
  const std::string name = agent.to_string();
  const fs::path known_path = files_.known_agents();
  auto known = security::KnownAgents::load(known_path);
  if (!known) return Unexpected{known.error()};
  const security::TrustedKey* pinned = known->find(name);
  if (!pinned) {
    if (is_loopback_host(agent.host)) {
      log::debug("agent {} is on loopback and not pinned in {}: plaintext", name,
                 known_path.string());
      return std::optional<ChannelSecurity>{};
    }
    return Unexpected{fmt::format(
        "the agent {} is not in {}, so its key cannot be checked: run `usbnet pair {}` to "
        "pin it; or, for an agent that runs --insecure or does not speak TLS, connect in "
        "plaintext (USBNET_INSECURE=1, usbnet --insecure)",
        name, known_path.string(), name)};
  }
  auto made = context();
  if (!made) return Unexpected{made.error()};
  const security::PublicKey expected = pinned->key.key;
  const int line = pinned->line;
  ChannelSecurity tls;
  tls.context = *made;
  tls.verify_agent = [expected, line, name, known_path](const security::PeerCertificate& cert) {
    if (cert.key && *cert.key == expected) {
      return Verdict::accept(
          PeerIdentity{PeerIdentity::Trust::PinnedAgent, cert.key, cert.fingerprint, cert.subject});
    }
    return Verdict::refuse(fmt::format(
        "the agent {} presented the key {}, but {}:{} pins {} for it: someone may be "
        "intercepting the connection (a man in the middle), or the agent's key was replaced. "
        "Refusing it. If the change is legitimate (compare the fingerprint the agent prints at "
        "start), run `usbnet pair {} --replace` (or delete line {} of {} and pin the new key)",
        name, cert.fingerprint, known_path.string(), line, expected.fingerprint(), name, line,
        known_path.string()));
  };
  return std::optional<ChannelSecurity>{std::move(tls)};
}

}  // namespace usbnet::client
