// Where keys and trust files live.
//
//   the agent: its state directory (--state-dir): $STATE_DIRECTORY (systemd's StateDirectory=),
//     else /var/lib/usbnet for root, else $XDG_STATE_HOME/usbnet-agent (~/.local/state/...);
//     holding agent_key(.pub), authorized_clients and pairing_code.
//   a client user: $XDG_CONFIG_HOME/usbnet (~/.config/usbnet), holding client_key(.pub) and
//     known_agents.
#pragma once

#include <filesystem>
#include <string>

namespace usbnet::security {

std::filesystem::path default_agent_state_dir();
std::filesystem::path client_config_dir();

struct AgentFiles {
  std::filesystem::path dir;
  std::filesystem::path key() const { return dir / "agent_key"; }
  std::filesystem::path authorized_clients() const { return dir / "authorized_clients"; }
  std::filesystem::path pairing_code() const { return dir / "pairing_code"; }
};

struct ClientFiles {
  std::filesystem::path dir;
  std::filesystem::path key() const { return dir / "client_key"; }
  std::filesystem::path known_agents() const { return dir / "known_agents"; }
};

// "user@host", the comment of a new key line.
std::string user_at_host(const std::string& user_fallback);

}  // namespace usbnet::security
