// Pairing with a one-time code, end to end: `usbnet-agent pair` beside a running agent (same
// state directory) makes the code, `usbnet pair HOST:PORT --code CODE` authorizes the client and
// pins the agent in one step, after which the client lists the devices over TLS. The code is
// single-use and expires; a wrong code authorizes nothing, says so, holds off the next attempt
// for a growing time, and the fifth wrong code forgets the code; an unknown client that does not
// pair gets no device while a code is waiting.
#include <catch2/catch.hpp>
#include <fstream>
#include <regex>
#include <thread>

#include "support/agent_process.h"
#include "support/temp_dir.h"
#include "support/text.h"

using namespace usbnet;
using namespace usbnet::test;
using namespace std::chrono_literals;

namespace {

std::map<std::string, std::string> client_env(const TempDir& dir) {
  return {{"USBNET_CONFIG_DIR", dir.path().string()}, {"USBNET_INSECURE", kUnset}};
}

// `usbnet-agent pair` on the agent's state directory: the code it prints.
std::string make_code(const AgentProcess& agent, const std::string& valid_s = "600") {
  const RunResult r = run(
      {Programs::agent(), "pair", "--state-dir", agent.state_dir().string(), "--valid", valid_s});
  INFO(r.out << r.err);
  REQUIRE(r.status == 0);
  std::smatch m;
  const std::regex code(R"(Pairing code: ([0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}))");
  REQUIRE(std::regex_search(r.out, m, code));
  CHECK(r.out.find("usbnet pair HOST:PORT --code " + m[1].str()) != std::string::npos);
  return m[1];
}

RunResult pair_with(const AgentProcess& agent, const TempDir& client, const std::string& code) {
  return run({Programs::cli(), "pair", agent.endpoint(), "--code", code}, client_env(client), 20s);
}

RunResult list(const AgentProcess& agent, const TempDir& client) {
  return run({Programs::cli(), "list", "--agent", agent.endpoint(), "--timeout", "3000"},
             client_env(client), 20s);
}

std::string file_text(const std::filesystem::path& path) {
  std::ifstream in(path);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// A code of the right form that is not the agent's (its first character changed).
std::string wrong(std::string code) {
  code[0] = code[0] == 'A' ? 'B' : 'A';
  return code;
}

}  // namespace

TEST_CASE("a pairing code authorizes the client and pins the agent in one step, once") {
  AgentProcess agent({"--simulate", "loopback,mouse"});
  TempDir client;
  const std::string code = make_code(agent);

  // While the code waits, a TLS client that is unknown to the agent and does not pair gets a
  // refusal and nothing else (its own directory, with the agent pinned so that it uses TLS).
  TempDir stranger;
  {
    std::ofstream(stranger.path() / "known_agents")
        << agent.endpoint() << " " << agent.key_line() << "\n";
  }
  const RunResult refused = list(agent, stranger);
  INFO(refused.out << refused.err);
  CHECK(refused.status == 1);
  CHECK(refused.out.empty());
  CHECK(count(refused.err, "\n") == 1);
  CHECK(refused.err.find("does not know the client key") != std::string::npos);
  CHECK(refused.err.find("usbnet pair") != std::string::npos);

  // Typed as people do: lower case, without dashes.
  std::string typed;
  for (char c : code)
    if (c != '-') typed += static_cast<char>(std::tolower(c));
  const RunResult paired = pair_with(agent, client, typed);
  INFO(paired.out << paired.err);
  REQUIRE(paired.status == 0);
  CHECK(paired.out.find("Paired with " + agent.endpoint()) != std::string::npos);
  const std::string agent_key = agent.key_line();
  const std::string agent_base64 = agent_key.substr(0, agent_key.rfind(' '));
  CHECK(file_text(client.path() / "known_agents").find(agent.endpoint() + " " + agent_base64) !=
        std::string::npos);
  CHECK(count(file_text(agent.state_dir() / "authorized_clients"), "usbnet-ed25519 ") == 1);
  CHECK_FALSE(std::filesystem::exists(agent.state_dir() / "pairing_code"));

  // Afterwards: the devices, over TLS (the agent is pinned, so nothing else is tried).
  const RunResult listed = list(agent, client);
  INFO(listed.out << listed.err);
  CHECK(listed.status == 0);
  CHECK(listed.out.find("ID 1209:0001") != std::string::npos);
  REQUIRE(agent.process().wait_for_output("client connected (usbnet list), TLS, key", 5s));
  CHECK(agent.process().err().find("(paired just now)") != std::string::npos);

  // Single-use: a second client with the same code is refused and authorized nowhere.
  TempDir second;
  const RunResult again = pair_with(agent, second, code);
  INFO(again.out << again.err);
  CHECK(again.status == 1);
  CHECK(again.err.find("not paired") != std::string::npos);
  CHECK_FALSE(std::filesystem::exists(second.path() / "known_agents"));
  CHECK(count(file_text(agent.state_dir() / "authorized_clients"), "usbnet-ed25519 ") == 1);
}

TEST_CASE("an expired pairing code is refused") {
  AgentProcess agent({"--simulate", "loopback"});
  TempDir client;
  const std::string code = make_code(agent, "1");
  std::this_thread::sleep_for(2500ms);
  const RunResult r = pair_with(agent, client, code);
  INFO(r.out << r.err);
  CHECK(r.status == 1);
  CHECK(count(r.err, "\n") == 1);
  CHECK(r.err.find("expired") != std::string::npos);
  CHECK_FALSE(std::filesystem::exists(client.path() / "known_agents"));
  CHECK_FALSE(std::filesystem::exists(agent.state_dir() / "authorized_clients"));
}

TEST_CASE("a wrong pairing code authorizes nothing, says so, and repeated ones are held off") {
  AgentProcess agent({"--simulate", "loopback"});
  TempDir client;
  const std::string code = make_code(agent);

  const RunResult first = pair_with(agent, client, wrong(code));
  INFO(first.out << first.err);
  CHECK(first.status == 1);
  CHECK(count(first.err, "\n") == 1);
  CHECK(first.err.find("wrong pairing code") != std::string::npos);
  CHECK_FALSE(std::filesystem::exists(client.path() / "known_agents"));
  CHECK_FALSE(std::filesystem::exists(agent.state_dir() / "authorized_clients"));

  // At once again, even with the right code: held off.
  const RunResult held = pair_with(agent, client, code);
  INFO(held.out << held.err);
  CHECK(held.status == 1);
  CHECK(held.err.find("pairing is refused for") != std::string::npos);
  CHECK_FALSE(std::filesystem::exists(client.path() / "known_agents"));

  // Four wrong codes more, each once the hold-off (1, 2, 4, 8 s) has passed: the code is
  // forgotten, and the right code no longer works.
  int wrong_codes = 1;
  std::string last;
  for (int tries = 0; wrong_codes < 5 && tries < 200; ++tries) {
    const RunResult r = pair_with(agent, client, wrong(code));
    last = r.err;
    REQUIRE(r.status == 1);
    if (r.err.find("pairing is refused for") != std::string::npos) {
      std::this_thread::sleep_for(250ms);
      continue;
    }
    CHECK(r.err.find("wrong pairing code") != std::string::npos);
    ++wrong_codes;
  }
  INFO(last);
  REQUIRE(wrong_codes == 5);
  CHECK(last.find("forgotten") != std::string::npos);
  CHECK_FALSE(std::filesystem::exists(agent.state_dir() / "pairing_code"));
  const RunResult burned = pair_with(agent, client, code);
  INFO(burned.out << burned.err);
  CHECK(burned.status == 1);
  CHECK_FALSE(std::filesystem::exists(client.path() / "known_agents"));
  CHECK_FALSE(std::filesystem::exists(agent.state_dir() / "authorized_clients"));
}
