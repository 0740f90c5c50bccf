#include "cli/pair_command.h"

#include <unistd.h>

#include <cstdio>
#include <iostream>
#include <memory>
#include <mutex>
#include <optional>

#include "client/agent_client.h"
#include "client/client_security.h"
#include "security/trust_files.h"
#include "transport/endpoint.h"

namespace usbnet::cli {

namespace {

class Quiet : public client::ClientListener {
  void on_connected(const std::vector<wire::DeviceInfo>&, int) override {}
  void on_device_arrived(const wire::DeviceInfo&) override {}
  void on_device_left(std::uint32_t) override {}
  void on_disconnected(const std::string&) override {}
};

int fail(const std::string& message) {
  std::fprintf(stderr, "usbnet pair: %s\n", message.c_str());
  return 1;
}

// What the agent presented in the handshake (the io thread writes it, main reads it after).
struct Seen {
  std::mutex mutex;
  std::optional<security::PublicKey> key;
  std::string fingerprint;
  std::string name;
};

}  // namespace

int pair(const PairRequest& request) {
  auto agent = transport::parse_endpoint(request.agent, wire::kDefaultPort);
  if (!agent) return fail(agent.error());
  if (agent->host.empty()) return fail("'" + request.agent + "' names no host");
  const std::string name = agent->to_string();
  auto trust = std::make_shared<client::ClientTrust>(client::client_dir_from_environment(), false);
  auto context = trust->context();
  if (!context) return fail(context.error());
  auto seen = std::make_shared<Seen>();

  client::ClientOptions options;
  options.agent = *agent;
  options.name = "usbnet pair";
  options.connect_timeout = std::chrono::milliseconds(request.timeout_ms);
  options.reconnect = false;
  // Any key is accepted here: this connection only shows it, the user judges it below.
  options.security = [context = *context, seen](const transport::Endpoint&) {
    client::ChannelSecurity tls;
    tls.context = context;
    tls.verify_agent = [seen](const security::PeerCertificate& cert) {
      std::lock_guard lock(seen->mutex);
      if (!cert.key) {
        return security::Verdict::refuse("the agent presents a key that is not Ed25519 (" +
                                         cert.fingerprint + "): it cannot be pinned");
      }
      seen->key = cert.key;
      seen->fingerprint = cert.fingerprint;
      seen->name = cert.subject;
      return security::Verdict::accept(security::PeerIdentity{
          security::PeerIdentity::Trust::NewAgent, cert.key, cert.fingerprint, cert.subject});
    };
    return client::ConnectDecision{std::optional<client::ChannelSecurity>{std::move(tls)}};
  };
  Quiet quiet;
  std::optional<std::string> error;
  {
    client::AgentClient client(options, &quiet);
    error = client.ensure_connected();
  }
  std::optional<security::PublicKey> key;
  {
    std::lock_guard lock(seen->mutex);
    key = seen->key;
  }
  if (!key) return fail("cannot see the key of " + name + ": " + error.value_or("no handshake"));

  std::printf("The agent %s presents the key %s.\n", name.c_str(), key->fingerprint().c_str());
  std::printf(
      "Compare it with the fingerprint the agent logs at start (\"agent key SHA256:...\").\n");
  if (!request.yes) {
    if (!::isatty(STDIN_FILENO)) {
      return fail("not pinned: confirm on a terminal, or pass --yes once you have compared it");
    }
    std::printf("Pin it for %s? [y/N] ", name.c_str());
    std::fflush(stdout);
    std::string answer;
    std::getline(std::cin, answer);
    if (answer != "y" && answer != "Y" && answer != "yes") return fail("not pinned");
  }
  const security::KeyLine agent_line{*key, "usbnet-agent"};
  auto pinned =
      security::pin_agent(trust->files().known_agents(), name, agent_line, request.replace);
  if (!pinned) return fail(pinned.error());
  std::printf("%s %s in %s\n", *pinned ? "Pinned" : "Already pinned:", name.c_str(),
              trust->files().known_agents().c_str());
  auto line = trust->key_line();
  if (!line) return fail(line.error());
  if (!error) {
    std::printf("The agent lets this client in already.\n");
  } else {
    std::printf(
        "To let this client in, append this line to the agent's authorized_clients (in its "
        "state directory):\n%s\n",
        line->to_string().c_str());
  }
  return 0;
}

}  // namespace usbnet::cli
