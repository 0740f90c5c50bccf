// TLS between the shim (and the usbnet command) and the agent, end to end, with keys in files
// as users keep them: the client's in its directory (USBNET_CONFIG_DIR), the agent's in its
// state directory. Paired by hand: the client's `usbnet key` line appended to the agent's
// authorized_clients, the agent's agent_key.pub pinned in the client's known_agents; and with
// `usbnet pair`, which pins the agent's key after showing its fingerprint.
//
// The examples run over TLS; an unknown client key is refused and sees no device; an agent
// with another key than the pinned one (a man in the middle) is refused with the message that
// says so; plaintext to a TLS agent and TLS to a plaintext agent each end with one clear line,
// in bounded time; the agent writes an audit line per connection.
#include <catch2/catch.hpp>
#include <fstream>
#include <regex>

#include "support/agent_process.h"
#include "support/fake_agent.h"
#include "support/shim_env.h"
#include "support/temp_dir.h"
#include "support/text.h"

using namespace usbnet;
using namespace usbnet::test;
using namespace std::chrono_literals;

namespace {

// A client user's directory: its key (made by `usbnet key`) and known_agents.
class ClientDir {
 public:
  std::map<std::string, std::string> env() const {
    return {{"USBNET_CONFIG_DIR", dir_.path().string()}, {"USBNET_INSECURE", kUnset}};
  }
  // `usbnet key`: the key line, and the fingerprint it reports.
  std::string key_line() {
    const RunResult r = run({Programs::cli(), "key"}, env());
    INFO(r.out << r.err);
    REQUIRE(r.status == 0);
    std::smatch m;
    REQUIRE(std::regex_search(r.err, m, std::regex(R"(SHA256:[A-Za-z0-9+/]{43})")));
    fingerprint_ = m[0];
    REQUIRE(r.out.starts_with("usbnet-ed25519 "));
    return r.out.substr(0, r.out.find('\n'));
  }
  const std::string& fingerprint() const { return fingerprint_; }
  void pin(const std::string& endpoint, const std::string& agent_key_line) const {
    std::ofstream out(dir_ / "known_agents", std::ios::app);
    out << endpoint << " " << agent_key_line << "\n";
  }

 private:
  TempDir dir_;
  std::string fingerprint_;
};

std::map<std::string, std::string> with(std::map<std::string, std::string> env,
                                        const std::map<std::string, std::string>& more) {
  for (const auto& [k, v] : more) env[k] = v;
  return env;
}

RunResult list_with_cli(const std::string& endpoint, const ClientDir& client,
                        std::vector<std::string> flags = {}) {
  std::vector<std::string> argv{Programs::cli()};
  argv.insert(argv.end(), flags.begin(), flags.end());
  argv.insert(argv.end(), {"list", "--agent", endpoint, "--timeout", "3000"});
  return run(argv, client.env(), 20s);
}

int lines(const std::string& text) { return count(text, "\n"); }

}  // namespace

TEST_CASE("the examples run over TLS with paired keys, and the agent audits each connection") {
  AgentProcess agent({"--simulate", "loopback,mouse"});
  ClientDir client;
  agent.authorize(client.key_line());
  client.pin(agent.endpoint(), agent.key_line());

  const RunResult listed =
      run({Programs::example("list_devices")}, with(shim_env(agent), client.env()));
  INFO(listed.out << listed.err);
  CHECK(listed.status == 0);
  CHECK(listed.err.empty());
  CHECK(listed.out.find("ID 1209:0001, high (480 Mbit/s) speed, port 1") != std::string::npos);
  CHECK(listed.out.find("manufacturer \"usbnet\", product \"Loopback\", serial \"LB0001\"") !=
        std::string::npos);

  const RunResult bulk = run({Programs::example("bulk_loopback"), "1209:0001", "150"},
                             with(shim_env(agent), client.env()));
  INFO(bulk.out << bulk.err);
  CHECK(bulk.status == 0);
  CHECK(bulk.out.find("loopback: 150 rounds OK") != std::string::npos);
  CHECK(bulk.out.find("source: 10 transfers, pattern OK") != std::string::npos);
  CHECK(bulk.out.find("sink: 655360 bytes received, 0 off pattern") != std::string::npos);

  const RunResult cli = list_with_cli(agent.endpoint(), client);
  INFO(cli.out << cli.err);
  CHECK(cli.status == 0);
  CHECK(cli.out.find("ID 1209:0001") != std::string::npos);

  // The audit trail: who (the key), from where, what it opened, when it left; all over TLS.
  REQUIRE(agent.process().wait_for_output("client connected (usbnet list)", 5s));
  const std::string log = agent.process().err();
  INFO(log);
  const std::string tls_client = "), TLS, key " + client.fingerprint();
  CHECK(std::regex_search(log, std::regex(R"(127\.0\.0\.1:\d+: client connected \(libusbnet)")));
  CHECK(count(log, tls_client) == 3);
  CHECK(count(log, "), plaintext") == 0);
  CHECK(std::regex_search(log, std::regex(R"(127\.0\.0\.1:\d+: opened device \d+ \(1209:0001\))")));
  CHECK(count(log, "client disconnected") >= 2);
}

TEST_CASE("async bulk streams and isochronous transfers over TLS, every byte checked") {
  AgentProcess agent({"--simulate", "loopback,loopback3,audio"});
  ClientDir client;
  agent.authorize(client.key_line());
  client.pin(agent.endpoint(), agent.key_line());
  const auto env = with(shim_env(agent), client.env());
  for (const char* device : {"1209:0001", "1209:0004"}) {
    for (const char* direction : {"in", "out"}) {
      const RunResult r =
          run({Programs::example("async_stream"), direction, "32", "65536", "64", device}, env);
      INFO(device << " " << direction << "\n" << r.out << r.err);
      CHECK(r.status == 0);
      CHECK(r.out.find(std::string(direction) +
                       ": 67108864 bytes in 32-deep 65536-byte transfers") != std::string::npos);
      CHECK(r.out.find("every byte checked") != std::string::npos);
    }
  }
  const RunResult iso = run({Programs::example("iso_capture"), "20", "32", "3"}, env);
  INFO(iso.out << iso.err);
  CHECK(iso.status == 0);
  CHECK(iso.out.find("iso: 640 packets, 10 lost on the bus as expected, 0 wrong") !=
        std::string::npos);
  const std::string log = agent.process().err();
  CHECK(count(log, "), TLS, key " + client.fingerprint()) == 5);
  CHECK(count(log, "), plaintext") == 0);
}

TEST_CASE("a client whose key the agent does not know is refused and sees no device") {
  AgentProcess agent({"--simulate", "loopback,mouse"});
  ClientDir client;
  const std::string key = client.key_line();
  client.pin(agent.endpoint(), agent.key_line());

  const RunResult cli = list_with_cli(agent.endpoint(), client);
  INFO(cli.out << cli.err);
  CHECK(cli.status == 1);
  CHECK(cli.out.empty());  // no device list, not even "exports no device"
  CHECK(lines(cli.err) == 1);
  CHECK(cli.err.find("the agent refused this client's key") != std::string::npos);
  CHECK(cli.err.find("usbnet key") != std::string::npos);

  const RunResult shim =
      run({Programs::example("list_devices")}, with(shim_env(agent), client.env()));
  INFO(shim.out << shim.err);
  CHECK(shim.status == 0);
  CHECK(shim.out.find("1209:") == std::string::npos);
  CHECK(lines(shim.err) == 1);
  CHECK(shim.err.find("the agent refused this client's key") != std::string::npos);

  REQUIRE(agent.process().wait_for_output("is not in", 5s));
  const std::string log = agent.process().err();
  CHECK(log.find("client key " + client.fingerprint() + " is not in") != std::string::npos);
  CHECK(log.find("client connected") == std::string::npos);  // no HELLO was ever read
  CHECK(log.find("opened device") == std::string::npos);

  // Authorized by appending its line: in at once, without restarting the agent.
  agent.authorize(key);
  const RunResult after = list_with_cli(agent.endpoint(), client);
  INFO(after.out << after.err);
  CHECK(after.status == 0);
  CHECK(after.out.find("ID 1209:0001") != std::string::npos);
}

TEST_CASE("an agent with another key than the pinned one (a man in the middle) is refused") {
  AgentProcess pinned({"--simulate", "loopback"});
  AgentProcess impostor({"--simulate", "loopback"});
  ClientDir client;
  impostor.authorize(client.key_line());
  // The client pinned the real agent's key for the address where the impostor answers.
  client.pin(impostor.endpoint(), pinned.key_line());

  const RunResult cli = list_with_cli(impostor.endpoint(), client);
  INFO(cli.out << cli.err);
  CHECK(cli.status == 1);
  CHECK(cli.out.empty());
  CHECK(lines(cli.err) == 1);
  CHECK(cli.err.find("presented the key") != std::string::npos);
  CHECK(cli.err.find("man in the middle") != std::string::npos);
  CHECK(cli.err.find("delete line 1 of") != std::string::npos);

  const RunResult shim =
      run({Programs::example("list_devices")}, with(shim_env(impostor), client.env()));
  INFO(shim.out << shim.err);
  CHECK(shim.out.find("1209:") == std::string::npos);
  CHECK(lines(shim.err) == 1);
  CHECK(shim.err.find("man in the middle") != std::string::npos);

  REQUIRE(impostor.process().wait_for_output("the client refused this agent's key", 5s));
  CHECK(impostor.process().err().find("client connected") == std::string::npos);
}

TEST_CASE("a plaintext client of an agent that requires TLS gets one clear line, at once") {
  // Every address, without --insecure: TLS only.
  AgentProcess agent({"--simulate", "loopback"}, ":0");
  CHECK(agent.process().err().find("TLS 1.3 required") != std::string::npos);
  ClientDir client;
  for (const auto& flags : {std::vector<std::string>{"--insecure"}, std::vector<std::string>{}}) {
    auto env = client.env();
    // --insecure, or its variable.
    if (flags.empty()) env["USBNET_INSECURE"] = "1";
    std::vector<std::string> argv{Programs::cli()};
    argv.insert(argv.end(), flags.begin(), flags.end());
    argv.insert(argv.end(), {"list", "--agent", agent.endpoint(), "--timeout", "3000"});
    const RunResult cli = run(argv, env, 20s);
    INFO(cli.out << cli.err);
    CHECK(cli.status == 1);
    CHECK(cli.out.empty());
    CHECK(lines(cli.err) == 1);
    CHECK(cli.err.find("agent refused the connection: this agent accepts only TLS clients") !=
          std::string::npos);
  }
  REQUIRE(agent.process().wait_for_output("a plaintext client, refused", 5s));
  CHECK(agent.process().err().find("client connected") == std::string::npos);
}

TEST_CASE("a TLS client of an agent that does not speak TLS gets one clear line, at once") {
  // An older agent: it reads the ClientHello as a frame (far too long) and says so in plain
  // usbnet.
  FakeAgent old_agent;
  ClientDir client;
  client.key_line();
  AgentProcess some_agent({"--simulate", "loopback"});
  client.pin(old_agent.endpoint(), some_agent.key_line());
  std::vector<std::string> argv{Programs::cli(),      "list",      "--agent",
                                old_agent.endpoint(), "--timeout", "3000"};
  Process cli(argv, client.env());
  auto peer = old_agent.accept();
  REQUIRE(peer);
  peer->send(wire::Error{0, wire::error_code::kIo, "protocol error: frame too large"});
  const auto status = cli.wait(20s);
  REQUIRE(status);
  peer.reset();
  INFO(cli.out() << cli.err());
  CHECK(*status == 1);
  CHECK(cli.out().empty());
  CHECK(lines(cli.err()) == 1);
  CHECK(cli.err().find("the agent answered without TLS") != std::string::npos);
}

TEST_CASE("an agent neither pinned nor on loopback is refused before connecting") {
  ClientDir client;
  // TEST-NET-1: never reached, the client decides before connecting.
  const RunResult cli = list_with_cli("192.0.2.1:3241", client);
  INFO(cli.out << cli.err);
  CHECK(cli.status == 1);
  CHECK(lines(cli.err) == 1);
  CHECK(cli.err.find("192.0.2.1:3241 is not in") != std::string::npos);
  CHECK(cli.err.find("known_agents") != std::string::npos);
  CHECK(cli.err.find("usbnet pair 192.0.2.1:3241") != std::string::npos);
  CHECK(cli.err.find("USBNET_INSECURE=1") != std::string::npos);
}

TEST_CASE(
    "usbnet pair shows the agent's fingerprint and pins it, usbnet-agent authorize lets the "
    "client in") {
  AgentProcess agent({"--simulate", "loopback"});
  ClientDir client;
  std::smatch m;
  const std::string log = agent.process().err();
  REQUIRE(std::regex_search(log, m, std::regex(R"(created the agent's key (SHA256:\S{43}))")));
  const std::string agent_fingerprint = m[1];

  // Without a terminal and without --yes: nothing is pinned.
  const RunResult unsure = run({Programs::cli(), "pair", agent.endpoint()}, client.env(), 20s);
  INFO(unsure.out << unsure.err);
  CHECK(unsure.status == 1);
  CHECK(unsure.out.find(agent_fingerprint) != std::string::npos);
  CHECK(unsure.err.find("not pinned") != std::string::npos);

  const RunResult paired =
      run({Programs::cli(), "pair", agent.endpoint(), "--yes"}, client.env(), 20s);
  INFO(paired.out << paired.err);
  REQUIRE(paired.status == 0);
  CHECK(paired.out.find("presents the key " + agent_fingerprint) != std::string::npos);
  CHECK(paired.out.find("Pinned " + agent.endpoint()) != std::string::npos);
  const auto at = paired.out.find("usbnet-ed25519 ");
  REQUIRE(at != std::string::npos);
  const std::string client_line = paired.out.substr(at, paired.out.find('\n', at) - at);

  // Not let in yet: refused for its key (the agent is pinned, so this is TLS).
  const RunResult refused = list_with_cli(agent.endpoint(), client);
  CHECK(refused.err.find("the agent refused this client's key") != std::string::npos);
  // usbnet-agent authorize: a line with garbage is one clear line; the printed line lets the
  // client in, over TLS, without a restart.
  const RunResult garbage = run({Programs::agent(), "authorize", "usbnet-ed25519 AAAA!",
                                 "--state-dir", agent.state_dir().string()});
  CHECK(garbage.status == 2);
  CHECK(lines(garbage.err) == 1);
  CHECK(garbage.err.find("usbnet-agent: authorize: ") == 0);
  const RunResult authorized =
      run({Programs::agent(), "authorize", client_line, "--state-dir", agent.state_dir().string()});
  INFO(authorized.out << authorized.err);
  CHECK(authorized.status == 0);
  CHECK(authorized.out.find("authorized SHA256:") == 0);
  const RunResult twice =
      run({Programs::agent(), "authorize", client_line, "--state-dir", agent.state_dir().string()});
  CHECK(twice.out.find("already authorized") == 0);
  const RunResult listed = list_with_cli(agent.endpoint(), client);
  INFO(listed.out << listed.err);
  CHECK(listed.status == 0);
  CHECK(listed.out.find("ID 1209:0001") != std::string::npos);
  REQUIRE(agent.process().wait_for_output("client connected (usbnet list), TLS, key", 5s));

  const RunResult again =
      run({Programs::cli(), "pair", agent.endpoint(), "--yes"}, client.env(), 20s);
  INFO(again.out << again.err);
  CHECK(again.status == 0);
  CHECK(again.out.find("Already pinned") != std::string::npos);
  CHECK(again.out.find("lets this client in already") != std::string::npos);
}

TEST_CASE("usbnet pair refuses to replace a pinned key unless told to") {
  AgentProcess first({"--simulate", "loopback"});
  AgentProcess second({"--simulate", "loopback"});
  ClientDir client;
  client.key_line();
  client.pin(second.endpoint(), first.key_line());
  const RunResult refused =
      run({Programs::cli(), "pair", second.endpoint(), "--yes"}, client.env(), 20s);
  INFO(refused.out << refused.err);
  CHECK(refused.status == 1);
  CHECK(refused.err.find("pins another key for " + second.endpoint()) != std::string::npos);
  CHECK(refused.err.find("--replace") != std::string::npos);
  const RunResult replaced =
      run({Programs::cli(), "pair", second.endpoint(), "--yes", "--replace"}, client.env(), 20s);
  INFO(replaced.out << replaced.err);
  CHECK(replaced.status == 0);
  // Now pinned to the second agent's key: its message is no longer a man in the middle.
  second.authorize(client.key_line());
  const RunResult listed = list_with_cli(second.endpoint(), client);
  INFO(listed.out << listed.err);
  CHECK(listed.status == 0);
  CHECK(listed.out.find("ID 1209:0001") != std::string::npos);
}
