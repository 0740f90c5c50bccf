// How the client side meets an agent: TLS with the agent's key pinned, or plaintext.
//
// The rule, decided again at every connection attempt (so that a key pinned meanwhile counts):
//   - insecure (USBNET_INSECURE=1, usbnet --insecure): plaintext, for an agent that does not
//     speak TLS or runs --insecure;
//   - the agent's HOST:PORT is pinned in known_agents: TLS 1.3, and the agent must present that
//     key; another key is refused with a message that says what happened and how to accept a
//     legitimate change;
//   - not pinned, on a loopback address (127.0.0.0/8, ::1, localhost): plaintext, which every
//     loopback agent serves: the agent is this machine (or a tunnel's local end), with which
//     TLS would protect nothing;
//   - not pinned elsewhere: refused before connecting, with a message saying how to pin it.
//
// The client's own key pair is made on first use (the first TLS connection, or `usbnet key`) in
// the client directory: $USBNET_CONFIG_DIR, else $XDG_CONFIG_HOME/usbnet, else ~/.config/usbnet.
#pragma once

#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "security/key_line.h"
#include "security/paths.h"
#include "security/tls_context.h"
#include "transport/endpoint.h"
#include "usbnet/expected.h"

namespace usbnet::client {

// TLS for one connection: the client's context and the judge of the agent's key.
struct ChannelSecurity {
  std::shared_ptr<const security::TlsContext> context;
  security::PeerVerifier verify_agent;
};
// For one connection attempt: TLS, plaintext (nullopt), or a refusal (the error, for the user).
using ConnectDecision = Expected<std::optional<ChannelSecurity>, std::string>;
using SecurityPolicy = std::function<ConnectDecision(const transport::Endpoint& agent)>;

// The client directory as the environment names it.
std::filesystem::path client_dir_from_environment();
// Whether `host` (as written in HOST:PORT) is a loopback address or "localhost".
bool is_loopback_host(const std::string& host);

class ClientTrust {
 public:
  ClientTrust(std::filesystem::path dir, bool insecure);

  // The rule above.
  ConnectDecision decide(const transport::Endpoint& agent);
  // This client's public key line (the key is created if missing).
  Expected<security::KeyLine, std::string> key_line();
  const security::ClientFiles& files() const { return files_; }
  // This client's TLS context (the key is created if missing).
  Expected<std::shared_ptr<const security::TlsContext>, std::string> context();

  // decide() as a SecurityPolicy, keeping `trust` alive.
  static SecurityPolicy policy(std::shared_ptr<ClientTrust> trust);

 private:
  security::ClientFiles files_;
  const bool insecure_;
  std::mutex mutex_;
  std::shared_ptr<const security::TlsContext> context_;  // made once, on first use
};

}  // namespace usbnet::client
