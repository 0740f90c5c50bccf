// authorized_clients and known_agents: comments tolerated, one bad line refuses the whole file
// with FILE:LINE, appends and pins keep the file's other lines.
#include <catch2/catch.hpp>
#include <fstream>
#include <sstream>

#include "security/ed25519_key.h"
#include "security/trust_files.h"
#include "support/temp_dir.h"

using namespace usbnet::security;
using usbnet::test::TempDir;

namespace {

KeyLine new_key(const std::string& comment) {
  auto key = KeyPair::generate();
  REQUIRE(key);
  return {key->public_key(), comment};
}

std::string read_text(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

}  // namespace

TEST_CASE("authorized_clients: keys, comments and blank lines") {
  const KeyLine alice = new_key("alice@laptop");
  const KeyLine bob = new_key("bob");
  const std::string text = "# who may use this agent\n\n" + alice.to_string() + "\n   \n  " +
                           bob.to_string() + "\r\n# end\n";
  auto clients = AuthorizedClients::parse(text, "authorized_clients");
  REQUIRE(clients);
  REQUIRE(clients->keys().size() == 2);
  const TrustedKey* found = clients->find(bob.key);
  REQUIRE(found);
  CHECK(found->key.comment == "bob");
  CHECK(found->line == 5);
  CHECK_FALSE(clients->find(new_key("eve").key));
}

TEST_CASE("authorized_clients: one malformed line refuses the file, naming the line") {
  const KeyLine alice = new_key("alice");
  const std::string text = alice.to_string() + "\n# fine\nusbnet-ed25519 AAAA garbage\n";
  auto clients = AuthorizedClients::parse(text, "/x/authorized_clients");
  REQUIRE_FALSE(clients);
  CHECK(clients.error() ==
        "/x/authorized_clients:3: the key has 3 bytes, an Ed25519 public key has 32");
}

TEST_CASE("authorized_clients: authorize appends once and keeps the file") {
  TempDir dir;
  const auto path = dir / "state/authorized_clients";
  CHECK(AuthorizedClients::load(path)->keys().empty());  // absent: nobody
  const KeyLine alice = new_key("alice");
  const KeyLine bob = new_key("bob");
  CHECK(*authorize_client(path, alice));
  CHECK_FALSE(*authorize_client(path, alice));  // already there
  // A hand-edited file without a final newline.
  {
    std::ofstream out(path, std::ios::app);
    out << "# added by hand";
  }
  CHECK(*authorize_client(path, bob));
  auto clients = AuthorizedClients::load(path);
  REQUIRE(clients);
  CHECK(clients->keys().size() == 2);
  CHECK(read_text(path).find("# added by hand\n" + bob.to_string()) != std::string::npos);
}

TEST_CASE(
    "authorized_clients: revoke removes the lines of a fingerprint or a name, keeps the rest") {
  TempDir dir;
  const auto path = dir / "authorized_clients";
  const KeyLine alice = new_key("alice@laptop");
  const KeyLine bob = new_key("bob");
  const KeyLine alice_again = new_key("alice@laptop");
  {
    std::ofstream out(path);
    out << "# the lab's clients\n"
        << alice.to_string() << "\n\n"
        << bob.to_string() << "\n"
        << alice_again.to_string() << "\n";
  }
  // Nobody by that name: nothing removed, the file untouched.
  auto none = revoke_clients(path, "carol");
  REQUIRE(none);
  CHECK(none->empty());
  // By name: both of alice's lines.
  auto by_name = revoke_clients(path, "alice@laptop");
  REQUIRE(by_name);
  REQUIRE(by_name->size() == 2);
  CHECK((*by_name)[0].key.key == alice.key);
  CHECK((*by_name)[0].line == 2);
  CHECK((*by_name)[1].key.key == alice_again.key);
  CHECK(read_text(path) == "# the lab's clients\n\n" + bob.to_string() + "\n");
  // By fingerprint.
  auto by_fingerprint = revoke_clients(path, bob.key.fingerprint());
  REQUIRE(by_fingerprint);
  CHECK(by_fingerprint->size() == 1);
  CHECK(read_text(path) == "# the lab's clients\n\n");
  CHECK(AuthorizedClients::load(path)->keys().empty());
  // A malformed file is refused, naming its line, and left as it is.
  {
    std::ofstream out(path, std::ios::app);
    out << "usbnet-ed25519 garbage\n";
  }
  auto refused = revoke_clients(path, "bob");
  REQUIRE_FALSE(refused);
  CHECK(refused.error().find(path.string() + ":3:") == 0);
}

TEST_CASE("known_agents: entries by HOST:PORT, malformed lines named") {
  const KeyLine agent = new_key("usbnet-agent@lab");
  auto known = KnownAgents::parse("# pinned\nlab:3241 " + agent.to_string() + "\n", "known_agents");
  REQUIRE(known);
  REQUIRE(known->find("lab:3241"));
  CHECK(known->find("lab:3241")->key.key == agent.key);
  CHECK_FALSE(known->find("lab:3242"));

  auto no_key = KnownAgents::parse("\nlab:3241\n", "known_agents");
  REQUIRE_FALSE(no_key);
  CHECK(no_key.error() == "known_agents:2: expected HOST:PORT and a key line after it");
  auto bad_key = KnownAgents::parse("lab:3241 usbnet-ed25519 @@@@\n", "known_agents");
  REQUIRE_FALSE(bad_key);
  CHECK_THAT(bad_key.error(), Catch::StartsWith("known_agents:1: the key is not valid base64"));
}

TEST_CASE("known_agents: pinning once, a changed key refused unless replaced") {
  TempDir dir;
  const auto path = dir / "usbnet/known_agents";
  const KeyLine first = new_key("a");
  const KeyLine second = new_key("b");
  const KeyLine other = new_key("c");
  CHECK(*pin_agent(path, "lab:3241", first, false));
  CHECK(*pin_agent(path, "other:3241", other, false));
  CHECK_FALSE(*pin_agent(path, "lab:3241", first, false));  // already pinned
  auto changed = pin_agent(path, "lab:3241", second, false);
  REQUIRE_FALSE(changed);
  CHECK_THAT(changed.error(), Catch::Contains(first.key.fingerprint()) &&
                                  Catch::Contains(second.key.fingerprint()) &&
                                  Catch::Contains("line 1") && Catch::Contains("--replace"));
  CHECK(*pin_agent(path, "lab:3241", second, true));
  auto known = KnownAgents::load(path);
  REQUIRE(known);
  CHECK(known->agents().size() == 2);
  CHECK(known->find("lab:3241")->key.key == second.key);
  CHECK(known->find("other:3241")->key.key == other.key);
}
