// Per-client device policy ([[allow]] in the agent's --config file), end to end: TLS clients
// with keys of their own, each seeing exactly its devices; a hidden device refused on OPEN
// exactly as one that does not exist; hotplug events of hidden devices not sent; and (on
// SIGHUP) rights changed, withdrawn and revoked while clients are connected.
#include <signal.h>
#include <catch2/catch.hpp>

#include <fstream>
#include <set>

#include "security/ed25519_key.h"
#include "support/agent_process.h"
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

  WireClient all(agent.port(), WireClient::Tls{admin.pair});
  all.handshake();
  WireClient a(agent.port(), WireClient::Tls{alice.pair});
  a.handshake();
  WireClient b(agent.port(), WireClient::Tls{bob.pair});
  b.handshake();
  WireClient c(agent.port(), WireClient::Tls{carol.pair});
  c.handshake();
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
  WireClient a(agent.port(), WireClient::Tls{alice.pair});
  a.handshake();
  WireClient b(agent.port(), WireClient::Tls{bob.pair});
  b.handshake();

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
