// Broken key and trust files as users end up with them (a copy cut short, a line pasted with
// garbage), on both sides, end to end: the agent's key in its state directory and its
// authorized_clients, the client's key and its known_agents. Each gives one line that names
// the file and says what is wrong with it; nothing is served or reached with it, and nothing
// hangs.
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>

#include "security/key_store.h"
#include "support/agent_process.h"
#include "support/shim_env.h"
#include "support/temp_dir.h"
#include "support/text.h"

using namespace usbnet;
using namespace usbnet::test;
using namespace std::chrono_literals;
namespace fs = std::filesystem;

namespace {

int lines(const std::string& text) { return count(text, "\n"); }

// A key file made as usbnet makes them, then cut to half its length (mode 0600 kept).
void make_truncated_key(const fs::path& path) {
  REQUIRE(security::load_or_create_key(path, "truncated-test"));
  fs::resize_file(path, fs::file_size(path) / 2);
}

void write_garbage(const fs::path& path) {
  std::ofstream(path, std::ios::trunc) << "-----BEGIN PRIVATE KEY-----\nnot base64 at all!\n";
  fs::permissions(path, fs::perms::owner_read | fs::perms::owner_write);
}

std::map<std::string, std::string> client_env(const TempDir& dir) {
  return {{"USBNET_CONFIG_DIR", dir.path().string()}, {"USBNET_INSECURE", kUnset}};
}

RunResult list(const AgentProcess& agent, const TempDir& client) {
  return run({Programs::cli(), "list", "--agent", agent.endpoint(), "--timeout", "3000"},
             client_env(client), 20s);
}

void pin(const TempDir& client, const AgentProcess& agent) {
  std::ofstream(client / "known_agents", std::ios::app)
      << agent.endpoint() << " " << agent.key_line() << "\n";
}

}  // namespace

TEST_CASE("an agent whose key file is truncated or garbage does not start, and says why") {
  for (const bool truncated : {true, false}) {
    INFO((truncated ? "truncated" : "garbage"));
    TempDir state;
    const fs::path key = state / "agent_key";
    if (truncated) {
      make_truncated_key(key);
    } else {
      write_garbage(key);
    }
    const RunResult r = run({Programs::agent(), "--listen", "127.0.0.1:0", "--no-usb", "--simulate",
                             "loopback", "--state-dir", state.path().string()},
                            {}, 20s);
    INFO(r.out << r.err);
    CHECK(r.status != 0);
    CHECK(r.err.find("listening on") == std::string::npos);
    CHECK(lines(r.err) == 1);
    CHECK(r.err.find(key.string()) != std::string::npos);
    CHECK(r.err.find("not a usbnet key file") != std::string::npos);
    // The broken file is left for its owner to look at, not replaced by a new key.
    CHECK(fs::exists(key));
  }
}

TEST_CASE("a key line with garbage in authorized_clients refuses clients and names the line") {
  AgentProcess agent({"--simulate", "loopback"});
  TempDir client;
  REQUIRE(security::load_or_create_key(client / "client_key", "client"));
  pin(client, agent);
  // The client's own line, then one pasted with garbage in its key.
  std::ifstream in(client / "client_key.pub");
  std::string client_line;
  std::getline(in, client_line);
  agent.authorize(client_line);
  agent.authorize("usbnet-ed25519 AAAA!!!!garbage pasted");
  const RunResult r = list(agent, client);
  INFO(r.out << r.err);
  CHECK(r.status == 1);
  CHECK(r.out.empty());
  CHECK(lines(r.err) == 1);
  CHECK(r.err.find("the agent refused this client's key") != std::string::npos);
  const fs::path file = agent.state_dir() / "authorized_clients";
  REQUIRE(agent.process().wait_for_output(file.string() + ":2: ", 10s));
  const std::string log = agent.process().err();
  INFO(log);
  CHECK(log.find("client disconnected before its HELLO (the handshake failed: " + file.string() +
                 ":2: the key is not valid base64") != std::string::npos);
  CHECK(log.find("no key in it is accepted until it is fixed") != std::string::npos);
  CHECK(log.find("client connected") == std::string::npos);
}

TEST_CASE("a client whose key file is truncated or garbage reaches nothing, and says why") {
  AgentProcess agent({"--simulate", "loopback"});
  for (const bool truncated : {true, false}) {
    INFO((truncated ? "truncated" : "garbage"));
    TempDir client;
    const fs::path key = client / "client_key";
    if (truncated) {
      make_truncated_key(key);
    } else {
      write_garbage(key);
    }
    pin(client, agent);
    const RunResult cli = list(agent, client);
    INFO(cli.out << cli.err);
    CHECK(cli.status == 1);
    CHECK(cli.out.empty());
    CHECK(lines(cli.err) == 1);
    CHECK(cli.err.find(key.string()) != std::string::npos);
    CHECK(cli.err.find("not a usbnet key file") != std::string::npos);

    // The shim: the program runs on, without the agent's devices, after one line.
    auto env = shim_env(agent);
    for (const auto& [k, v] : client_env(client)) env[k] = v;
    const RunResult shim = run({Programs::example("list_devices")}, env, 20s);
    INFO(shim.out << shim.err);
    CHECK(shim.status == 0);
    CHECK(shim.out.find("1209:0001") == std::string::npos);
    CHECK(lines(shim.err) == 1);
    CHECK(shim.err.find(key.string()) != std::string::npos);
    CHECK(shim.err.find("not a usbnet key file") != std::string::npos);
    CHECK(fs::exists(key));  // not replaced by a new key
  }
  CHECK(agent.process().err().find("client connected") == std::string::npos);
}

TEST_CASE("a key line with garbage in known_agents is refused, naming the line") {
  AgentProcess agent({"--simulate", "loopback"});
  TempDir client;
  REQUIRE(security::load_or_create_key(client / "client_key", "client"));
  std::ofstream(client / "known_agents")
      << agent.endpoint() << " usbnet-ed25519 " << agent.key_line().substr(15, 20) << "\n";
  const RunResult r = list(agent, client);
  INFO(r.out << r.err);
  CHECK(r.status == 1);
  CHECK(r.out.empty());
  CHECK(lines(r.err) == 1);
  CHECK(r.err.find((client / "known_agents").string() + ":1: ") != std::string::npos);
  CHECK(r.err.find("the key has 15 bytes") != std::string::npos);
  CHECK(agent.process().err().find("client connected") == std::string::npos);
}
