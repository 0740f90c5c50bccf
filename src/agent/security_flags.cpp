#include "agent/security_flags.h"

#include "security/paths.h"

namespace usbnet::agent {

void add_security_options(CLI::App& app, SecurityFlags& flags) {
  flags.state_dir = security::default_agent_state_dir().string();
  app.add_option("--state-dir", flags.state_dir,
                 "Directory of the agent's key pair (agent_key, created on first start) and of "
                 "authorized_clients, the client keys it lets in (default: $STATE_DIRECTORY, "
                 "else /var/lib/usbnet for root, else $XDG_STATE_HOME/usbnet-agent)")
      ->capture_default_str();
  app.add_flag("--insecure", flags.insecure,
               "Also serve plaintext clients, unauthenticated, when listening beyond loopback "
               "(a loopback-only agent serves them anyway); warned about at every start. TLS "
               "clients are still checked");
  app.add_option("--client-ca", flags.client_ca,
                 "Also let in TLS clients whose certificate this CA issued (PEM file)");
}

}  // namespace usbnet::agent
