// The agent's flags for keys and TLS (agent_security.h), which are also keys of its --config
// file: where its key and authorized_clients live, whether plaintext clients are served off
// loopback, and an organisation's CA whose client certificates it accepts.
#pragma once

#include <CLI/CLI.hpp>
#include <string>

namespace usbnet::agent {

struct SecurityFlags {
  std::string state_dir;  // default: security::default_agent_state_dir()
  bool insecure = false;
  std::string client_ca;
};

void add_security_options(CLI::App& app, SecurityFlags& flags);

}  // namespace usbnet::agent
