#include "cli/pair_command.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <memory>
#include <mutex>
#include <optional>

#include "client/agent_client.h"
#include "client/client_security.h"
#include "security/pairing.h"
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
  bool agent_proved_code = false;
};

std::string read_code_from_terminal() {
  std::printf("Pairing code from `usbnet-agent pair` (empty: compare the fingerprint instead): ");
  std::fflush(stdout);
  std::string typed;
  std::getline(std::cin, typed);
  return typed;
}

// After a connection with a pairing code: pinned only if the agent proved the code.
int finish_code_pairing(client::ClientTrust& trust, const std::string& name,
                        const security::PublicKey& key, const std::optional<std::string>& error,
                        const std::shared_ptr<Seen>& seen) {
  bool proved = false;
  {
    std::lock_guard lock(seen->mutex);
    proved = seen->agent_proved_code;
  }
  if (!proved) return fail("not paired: " + error.value_or("the agent did not prove the code"));
  // The agent proved the code its operator showed, for this very key: it replaces an older
  // pin (the code vouches for the change).
  const security::KeyLine agent_line{key, "usbnet-agent"};
  auto pinned = security::pin_agent(trust.files().known_agents(), name, agent_line, true);
  if (!pinned) return fail(pinned.error());
  std::printf(
      "Paired with %s: its key %s is pinned in %s, and the agent has added this "
      "client's key to its authorized_clients.\n",
      name.c_str(), key.fingerprint().c_str(), trust.files().known_agents().c_str());
  if (error) {
    std::printf("(The connection after pairing ended: %s)\n", error->c_str());
  }
  return 0;
}

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
  std::string typed = request.code;
  if (typed.empty() && !request.yes && ::isatty(STDIN_FILENO)) typed = read_code_from_terminal();
  std::optional<std::string> code;
  if (!typed.empty()) {
    code = security::normalize_pairing_code(typed);
    if (!code) {
      return fail("'" + typed +
                  "' is not a pairing code (16 letters and digits, as `usbnet-agent pair` "
                  "prints them: XXXX-XXXX-XXXX-XXXX)");
    }
  }

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
  if (code) {
    const security::PublicKey own = (*context)->own_key();
    options.hello_auth = [seen, own, code = *code] {
      std::lock_guard lock(seen->mutex);
      // The verifier above has run: the handshake is done.
      const auto proof = security::client_pairing_proof(code, own, seen->key.value_or(own));
      return std::pair{wire::AuthMethod::Pair, wire::Bytes(proof.begin(), proof.end())};
    };
    options.judge_agent_hello =
        [seen, own, code = *code](const wire::Hello& hello) -> std::optional<std::string> {
      std::lock_guard lock(seen->mutex);
      security::PairingProof given{};
      if (!seen->key || hello.auth_method != wire::AuthMethod::Pair ||
          hello.auth.size() != given.size()) {
        return "the agent accepted the code without proving that it knows it: nothing pinned";
      }
      std::copy(hello.auth.begin(), hello.auth.end(), given.begin());
      if (!security::proofs_equal(given, security::agent_pairing_proof(code, *seen->key, own))) {
        return "the agent's proof of the code is wrong: this is not the agent that made the "
               "code (a man in the middle?); nothing pinned";
      }
      seen->agent_proved_code = true;
      return std::nullopt;
    };
  }
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
  if (code) return finish_code_pairing(*trust, name, *key, error, seen);

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
