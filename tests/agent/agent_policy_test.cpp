// Per-client device policy ([[allow]] in the agent's --config file), end to end: TLS clients
// with keys of their own, each seeing exactly its devices; a hidden device refused on OPEN
// exactly as one that does not exist; hotplug events of hidden devices not sent; and (on
// SIGHUP) rights changed, withdrawn and revoked while clients are connected.
#include <signal.h>
#include <catch2/catch.hpp>

#include <fstream>
#include <set>
#include <thread>

#include "security/ed25519_key.h"
#include "support/agent_process.h"
#include "support/shim_env.h"
#include "support/temp_dir.h"
#include "support/wire_client.h"
#include "urb_helpers.h"

using namespace usbnet;
using namespace usbnet::test;
using namespace usbnet::wire::error_code;
using namespace std::chrono_literals;
using wire::UrbStatus;
using wire::UrbType;

namespace {

constexpr std::uint16_t kLoopback = 0x0001, kMouse = 0x0002, kDfu = 0x0005, kFtdi = 0x0007;
constexpr std::uint8_t kVendorOut = 0x40, kDetach = 0x07;

// A client user's key pair, and its line for authorized_clients.
struct ClientKey {
  security::KeyPair pair = security::KeyPair::generate().value();
  std::string name;
  explicit ClientKey(std::string n) : name(std::move(n)) {}
  std::string line() const { return security::KeyLine{pair.public_key(), name}.to_string(); }
  std::string fingerprint() const { return pair.public_key().fingerprint(); }
};

// A wire client over TLS presenting `key`, past its HELLO.
struct TlsClient : WireClient {
  TlsClient(const AgentProcess& agent, const ClientKey& key)
      : WireClient(agent.port(), Tls{key.pair}) {
    handshake();
  }
};

// The agent's configuration file, rewritten by the tests.
class ConfigFile {
 public:
  explicit ConfigFile(const std::string& text) { write(text); }
  void write(const std::string& text) const {
    // Whole or not at all: a reload never reads half a file.
    const auto partial = dir_ / "agent.toml.new";
    std::ofstream(partial) << text;
    std::filesystem::rename(partial, path());
  }
  std::filesystem::path path() const { return dir_ / "agent.toml"; }

 private:
  TempDir dir_;
};

// The simulated devices of these tests, on ports 1 to 4 of bus 100.
const std::vector<std::string> kDevices = {"--simulate", "loopback,mouse,ftdi,dfu"};

std::vector<std::string> agent_args(const ConfigFile& config) {
  std::vector<std::string> args = kDevices;
  args.insert(args.end(), {"--config", config.path().string()});
  return args;
}

// The product ids of the devices (not hubs) a client is shown.
std::set<std::uint16_t> products(const std::vector<wire::DeviceInfo>& list) {
  std::set<std::uint16_t> out;
  for (const auto& d : without_hubs(list)) out.insert(topology::product_id(d));
  return out;
}

// The device id of a product in the agent's full list (what an unrestricted client sees).
std::uint32_t id_of(WireClient& everything, std::uint16_t product) {
  const std::uint32_t id = device_with_product(everything, product);
  REQUIRE(id != 0);
  return id;
}

// The ERROR frame an OPEN of `device_id` gets, as bytes (request id fixed so that two answers
// compare byte for byte).
wire::Bytes open_answer(WireClient& c, std::uint32_t device_id) {
  c.send(wire::Open{4242, device_id});
  auto answer = c.receive_id(4242);
  REQUIRE(answer);
  REQUIRE(answer->as<wire::Error>());
  return answer->frame;
}

// Events (DEVICE_ARRIVED, DEVICE_LEFT) among what a client has received so far: a LIST_DEVICES
// round trip first, so that anything the agent sent before its answer has arrived.
struct Events {
  std::vector<std::uint32_t> arrived;  // product ids
  std::vector<std::uint32_t> left;     // device ids
};
Events events_so_far(WireClient& c) {
  c.list();
  Events events;
  while (auto r = c.receive(0ms)) {
    if (const auto* a = r->as<wire::DeviceArrived>()) {
      events.arrived.push_back(topology::product_id(a->device));
    } else if (const auto* l = r->as<wire::DeviceLeft>()) {
      events.left.push_back(l->device_id);
    }
  }
  return events;
}

}  // namespace

TEST_CASE("each TLS client sees exactly the devices the policy gives its key") {
  ClientKey alice("alice@laptop"), bob("bob@desk"), carol("carol");
  ConfigFile config(R"(
no-usb = true

[[allow]]
clients = ["alice@laptop"]
devices = ["1209:0001", "class=fe"]

[[allow]]
clients = [")" + bob.fingerprint() +
                    R"("]
devices = ["port=100-2", "serial=FT000001"]

[[allow]]
clients = ["everyone@lab"]
devices = ["*"]
)");
  AgentProcess agent(agent_args(config));
  ClientKey admin("everyone@lab");
  for (const ClientKey* k : {&alice, &bob, &carol, &admin}) agent.authorize(k->line());
  REQUIRE(agent.process().wait_for_output("device policy: 3 [[allow]] tables in", 5s));

  TlsClient all(agent, admin);
  TlsClient a(agent, alice);
  TlsClient b(agent, bob);
  TlsClient c(agent, carol);
  WireClient plain(agent.port());  // a plaintext client of this machine
  plain.handshake();

  // By name (the key's comment) and class (the DFU interface's); by fingerprint, port path and
  // serial number; every device; none.
  CHECK(products(all.list()) == std::set<std::uint16_t>{kLoopback, kMouse, kFtdi, kDfu});
  CHECK(products(a.list()) == std::set<std::uint16_t>{kLoopback, kDfu});
  CHECK(products(b.list()) == std::set<std::uint16_t>{kMouse, kFtdi});
  CHECK(c.list().empty());
  CHECK(plain.list().empty());
  // The hubs above a client's devices come with them, as topology.
  const auto listed_to_a = a.list();
  CHECK(listed_to_a.size() == 3);
  CHECK(listed_to_a.front().device_descriptor[4] == 0x09);

  // OPEN of a device the client may not use: the very bytes of the answer to an id that does
  // not exist.
  const std::uint32_t mouse = id_of(all, kMouse), loopback = id_of(all, kLoopback);
  const wire::Bytes nonexistent = open_answer(a, 999);
  CHECK(open_answer(a, mouse) == nonexistent);
  CHECK(open_answer(b, loopback) == nonexistent);
  CHECK(open_answer(c, loopback) == nonexistent);
  CHECK(open_answer(plain, mouse) == nonexistent);
  const std::uint32_t hub = all.list().front().device_id;
  CHECK(open_answer(c, hub) == nonexistent);  // a hub nobody sees is not even a hub
  // ... and what it may use opens, and works.
  auto ha = a.request(wire::Open{0, loopback});
  REQUIRE(ha);
  REQUIRE(a.request(wire::ClaimInterface{0, *ha, 0}));
  const wire::Bytes data = pattern(512);
  auto out = run_urb(a, transfer(UrbType::Bulk, *ha, 0x01, 512), data);
  REQUIRE(out);
  CHECK(out->status == UrbStatus::Completed);
  auto hb = b.request(wire::Open{0, mouse});
  CHECK(hb);

  // The audit lines say what each client may use.
  const std::string log = agent.process().err();
  INFO(log);
  CHECK(log.find("may use 1209:0001, class=fe ([[allow]] of " + config.path().string() + ")") !=
        std::string::npos);
  CHECK(log.find("may use port=100-2, serial=FT000001") != std::string::npos);
  CHECK(log.find("may use every device") != std::string::npos);
  CHECK(occurrences(log, "no [[allow]] table of " + config.path().string() +
                             " names this client: it sees no device") == 2);
}

TEST_CASE("a device a client may not use comes and goes without the client hearing of it") {
  ClientKey alice("alice"), bob("bob");
  ConfigFile config(R"(
[[allow]]
clients = ["alice"]
devices = ["1209:0001"]

[[allow]]
clients = ["bob"]
devices = ["1209:0002"]
)");
  AgentProcess agent(agent_args(config));
  agent.authorize(alice.line());
  agent.authorize(bob.line());
  TlsClient a(agent, alice);
  TlsClient b(agent, bob);

  // Alice's loopback leaves the bus and comes back as a new device.
  auto h = a.request(wire::Open{0, device_with_product(a, kLoopback)});
  REQUIRE(h);
  auto detach = run_urb(a, control(*h, kVendorOut, kDetach, 200, 0, 0));
  REQUIRE(detach);
  CHECK(detach->status == UrbStatus::Completed);
  auto left = a.receive(5s);
  REQUIRE(left);
  CHECK(left->as<wire::DeviceLeft>());
  std::optional<Received> arrived;
  for (int i = 0; i < 5 && !(arrived && arrived->as<wire::DeviceArrived>()); ++i) {
    arrived = a.receive(5s);
  }
  REQUIRE(arrived);
  REQUIRE(arrived->as<wire::DeviceArrived>());
  CHECK(topology::product_id(arrived->as<wire::DeviceArrived>()->device) == kLoopback);

  // Bob heard nothing of it, and his list is as it was.
  const Events bobs = events_so_far(b);
  CHECK(bobs.arrived.empty());
  CHECK(bobs.left.empty());
  CHECK(products(b.list()) == std::set<std::uint16_t>{kMouse});
}

TEST_CASE("an unmodified libusb program through the shim lists only its devices") {
  // A client user's directory, as `usbnet key` makes it, and the agent pinned in it.
  TempDir user;
  const std::map<std::string, std::string> user_env = {{"USBNET_CONFIG_DIR", user.path().string()},
                                                       {"USBNET_INSECURE", kUnset}};
  const RunResult key = run({Programs::cli(), "key"}, user_env);
  INFO(key.out << key.err);
  REQUIRE(key.status == 0);
  const std::string key_line = key.out.substr(0, key.out.find('\n'));
  REQUIRE(key_line.starts_with("usbnet-ed25519 "));
  const std::string name = key_line.substr(key_line.rfind(' ') + 1);  // user@host

  ConfigFile config("[[allow]]\nclients = [\"" + name +
                    "\"]\ndevices = [\"class=fe\", \"serial=MS0001\"]\n");
  AgentProcess agent(agent_args(config));
  agent.authorize(key_line);
  std::ofstream(user / "known_agents") << agent.endpoint() << " " << agent.key_line() << "\n";

  auto env = shim_env(agent);
  env.insert(user_env.begin(), user_env.end());
  const RunResult listed = run({Programs::example("list_devices")}, env);
  INFO(listed.out << listed.err);
  CHECK(listed.status == 0);
  CHECK(listed.err.empty());
  CHECK(listed.out.find("ID 1209:0005") != std::string::npos);  // the DFU bootloader
  CHECK(listed.out.find("ID 1209:0002") != std::string::npos);  // the mouse
  CHECK(listed.out.find("ID 1209:0001") == std::string::npos);
  CHECK(listed.out.find("ID 1209:0007") == std::string::npos);
  CHECK(agent.process().err().find("), TLS, key SHA256:") != std::string::npos);
}

// ---- SIGHUP ----------------------------------------------------------------------------------

namespace {

// Sends SIGHUP and waits until the agent has reloaded for the `n`th time.
void reload(AgentProcess& agent, std::size_t n) {
  agent.process().kill(SIGHUP);
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (occurrences(agent.process().err(), "SIGHUP: reloaded") < n) {
    REQUIRE(agent.process().running());
    REQUIRE(std::chrono::steady_clock::now() < deadline);
    std::this_thread::sleep_for(20ms);
  }
}

std::string three_tables(const std::string& alice, const std::string& bob,
                         const std::string& carol) {
  return "[[allow]]\nclients = [\"alice\"]\ndevices = [" + alice +
         "]\n\n[[allow]]\nclients = [\"bob\"]\ndevices = [" + bob +
         "]\n\n[[allow]]\nclients = [\"carol\"]\ndevices = [" + carol + "]\n";
}

// One round trip through a loopback device's bulk loopback, every byte checked.
void loop_round(WireClient& c, std::uint32_t handle, std::size_t length) {
  const wire::Bytes data = pattern(length);
  auto out =
      run_urb(c, transfer(UrbType::Bulk, handle, 0x01, static_cast<std::uint32_t>(length)), data);
  REQUIRE(out);
  CHECK(out->status == UrbStatus::Completed);
  auto in = run_urb(c, transfer(UrbType::Bulk, handle, 0x81, 4096));
  REQUIRE(in);
  CHECK(in->status == UrbStatus::Completed);
  CHECK(in->data == data);
}

}  // namespace

TEST_CASE(
    "SIGHUP: a device taken away ends as if it left, another client claims it at once, "
    "and clients whose rights did not change carry on") {
  ClientKey alice("alice"), bob("bob"), carol("carol");
  ConfigFile config(
      three_tables(R"("1209:0001", "1209:0002")", R"("1209:0001")", R"("1209:0004")"));
  std::vector<std::string> args = {"--simulate", "loopback,loopback3,mouse", "--config",
                                   config.path().string()};
  AgentProcess agent(args);
  for (const ClientKey* k : {&alice, &bob, &carol}) agent.authorize(k->line());
  TlsClient a(agent, alice);
  TlsClient b(agent, bob);
  TlsClient c(agent, carol);

  // Alice holds the loopback's interface, with an IN transfer waiting on it; Bob has it open
  // and cannot claim it; Carol works on the other loopback.
  const std::uint32_t loopback = device_with_product(a, kLoopback);
  const std::uint32_t ha = open_claimed(a, kLoopback);
  REQUIRE(ha != 0);
  const std::uint32_t waiting = send_urb(a, transfer(UrbType::Bulk, ha, 0x81, 512, 0));
  const std::uint32_t hb = b.request(wire::Open{0, loopback}).value();
  CHECK(b.request(wire::ClaimInterface{0, hb, 0}).error() == kBusy);
  const std::uint32_t hc = open_claimed(c, 0x0004);
  REQUIRE(hc != 0);
  loop_round(c, hc, 1000);

  // The loopback is Alice's no longer; Bob gains the mouse; Carol's rights stay.
  config.write(three_tables(R"("1209:0002")", R"("1209:0001", "1209:0002")", R"("1209:0004")"));
  reload(agent, 1);

  // Alice: her transfer ends with NO_DEVICE, then the device leaves her list.
  auto ended = wait_complete(a, waiting);
  REQUIRE(ended);
  CHECK(ended->status == UrbStatus::NoDevice);
  auto left = a.receive(5s);
  REQUIRE(left);
  REQUIRE(left->as<wire::DeviceLeft>());
  CHECK(left->as<wire::DeviceLeft>()->device_id == loopback);
  // Bob can claim it at once, and use it.
  REQUIRE(b.request(wire::ClaimInterface{0, hb, 0}));
  loop_round(b, hb, 700);
  // Her handle answers as one on a device that went away; closing it still works.
  CHECK(a.request(wire::ClaimInterface{0, ha, 0}).error() == kNoDevice);
  auto refused = run_urb(a, transfer(UrbType::Bulk, ha, 0x02, 64), pattern(64));
  REQUIRE(refused);
  CHECK(refused->status == UrbStatus::NoDevice);
  CHECK(products(a.list()) == std::set<std::uint16_t>{kMouse});
  CHECK(open_answer(a, loopback) == open_answer(a, 999));
  CHECK(a.request(wire::Close{0, ha}));

  // Bob hears of the mouse, his new device.
  const Events bobs = events_so_far(b);
  CHECK(bobs.arrived == std::vector<std::uint32_t>{kMouse});
  CHECK(bobs.left.empty());
  CHECK(products(b.list()) == std::set<std::uint16_t>{kLoopback, kMouse});

  // Carol was not touched: no event, and her device works as before.
  const Events carols = events_so_far(c);
  CHECK(carols.arrived.empty());
  CHECK(carols.left.empty());
  loop_round(c, hc, 3000);

  const std::string log = agent.process().err();
  INFO(log);
  CHECK(occurrences(log, "device policy reloaded: the client may now use") == 2);  // Alice, Bob
  CHECK(log.find("may now use 1209:0002\n") != std::string::npos);
  CHECK(log.find("the device policy no longer gives it") != std::string::npos);
  CHECK(log.find("key revoked") == std::string::npos);
}

TEST_CASE("revoke, then SIGHUP: the revoked client is disconnected and its claims released") {
  ClientKey alice("alice"), bob("bob");
  ConfigFile config("[[allow]]\nclients = [\"*\"]\ndevices = [\"*\"]\n");
  AgentProcess agent(agent_args(config));
  agent.authorize(alice.line());
  agent.authorize(bob.line());
  TlsClient a(agent, alice);
  TlsClient b(agent, bob);
  const std::uint32_t ha = open_claimed(a, kLoopback);
  REQUIRE(ha != 0);
  const std::uint32_t hb = b.request(wire::Open{0, device_with_product(b, kLoopback)}).value();
  CHECK(b.request(wire::ClaimInterface{0, hb, 0}).error() == kBusy);

  // usbnet-agent revoke: a name nobody has changes nothing; Alice's name removes her line.
  const std::vector<std::string> revoke = {Programs::agent(), "revoke", "--state-dir",
                                           agent.state_dir().string()};
  auto with = [&](const std::string& who) {
    auto argv = revoke;
    argv.insert(argv.begin() + 2, who);
    return run(argv);
  };
  const RunResult nobody = with("mallory");
  CHECK(nobody.status == 1);
  CHECK(nobody.err.find("no line of " + (agent.state_dir() / "authorized_clients").string() +
                        " has the key fingerprint or the name 'mallory' (nothing changed)") !=
        std::string::npos);
  const RunResult revoked = with("alice");
  INFO(revoked.out << revoked.err);
  REQUIRE(revoked.status == 0);
  CHECK(revoked.out.find("revoked " + alice.fingerprint() + " alice (line 1 of ") == 0);
  CHECK(revoked.out.find("systemctl reload usbnet-agent") != std::string::npos);
  // Until the reload, the connected client keeps working; new connections with it are refused.
  CHECK(a.request(wire::GetConfiguration{0, ha}));
  CHECK_THROWS([&] { TlsClient again(agent, alice); }());

  reload(agent, 1);
  // Alice is told, and disconnected; her claim is gone, so Bob takes the interface at once.
  auto told = a.receive(5s);
  REQUIRE(told);
  REQUIRE(told->as<wire::Error>());
  CHECK(told->as<wire::Error>()->code == kAccess);
  CHECK(told->as<wire::Error>()->text.find("revoked") != std::string::npos);
  CHECK(a.wait_closed(5s));
  REQUIRE(b.request(wire::ClaimInterface{0, hb, 0}));
  loop_round(b, hb, 2000);

  const std::string log = agent.process().err();
  INFO(log);
  CHECK(log.find("revoked: key " + alice.fingerprint() +
                 " is no longer in authorized_clients: disconnecting the client") !=
        std::string::npos);
  CHECK(log.find("client disconnected (key revoked)") != std::string::npos);
  CHECK(occurrences(log, "revoked: key") == 1);  // Bob stays
}

TEST_CASE("SIGHUP with a bad file keeps the policy in force, and the agent up") {
  ClientKey alice("alice");
  ConfigFile config(
      "heartbeat = 5000\n\n[[allow]]\nclients = [\"alice\"]\ndevices = [\"1209:0001\"]\n");
  AgentProcess agent(agent_args(config));
  agent.authorize(alice.line());
  TlsClient a(agent, alice);
  const std::uint32_t ha = open_claimed(a, kLoopback);
  REQUIRE(ha != 0);

  config.write("heartbeat = 5000\n\n[[allow]]\nclients = [\"alice\"]\ndevices = [\"mouse\"]\n");
  reload(agent, 1);
  std::string log = agent.process().err();
  CHECK(log.find("error: SIGHUP: " + config.path().string() +
                 ":5: [[allow]] table 1: devices: 'mouse' is not a device rule") !=
        std::string::npos);
  CHECK(log.find("the device policy in force is kept") != std::string::npos);
  CHECK(products(a.list()) == std::set<std::uint16_t>{kLoopback});
  loop_round(a, ha, 512);
  // TOML that does not parse: the same.
  config.write("[[allow]\n");
  reload(agent, 2);
  CHECK(products(a.list()) == std::set<std::uint16_t>{kLoopback});
  loop_round(a, ha, 512);

  // Fixed, with another setting changed: the policy applies, the setting waits for a restart.
  config.write("heartbeat = 700\n\n[[allow]]\nclients = [\"alice\"]\ndevices = [\"1209:*\"]\n");
  reload(agent, 3);
  log = agent.process().err();
  CHECK(log.find("settings of " + config.path().string() +
                 " other than [[allow]] changed: they take effect when the agent restarts") !=
        std::string::npos);
  CHECK(products(a.list()) == std::set<std::uint16_t>{kLoopback, kMouse, kFtdi, kDfu});
  loop_round(a, ha, 512);
}
