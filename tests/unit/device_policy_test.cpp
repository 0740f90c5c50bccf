// The device policy of the agent's configuration file ([[allow]] tables): parsing, every rule
// kind against device records, who gets what, and a clear error for every bad entry.
#include <catch2/catch.hpp>

#include "agent/device_policy.h"

using namespace usbnet;
using agent::DevicePolicy;
using agent::DeviceRule;
using agent::PolicyClient;

namespace {

// A device record: VID:PID, device class, one interface of `interface_class`, serial string
// (index 3, UTF-16LE) and its place (bus, port path).
wire::DeviceInfo device(std::uint16_t vid, std::uint16_t pid, std::uint8_t device_class,
                        std::uint8_t interface_class, const std::string& serial,
                        std::uint8_t bus = 1, std::vector<std::uint8_t> ports = {1}) {
  wire::DeviceInfo d;
  d.bus_number = bus;
  d.port_numbers = std::move(ports);
  d.device_descriptor = {18,
                         1,
                         0x00,
                         0x02,
                         device_class,
                         0,
                         0,
                         64,
                         static_cast<std::uint8_t>(vid),
                         static_cast<std::uint8_t>(vid >> 8),
                         static_cast<std::uint8_t>(pid),
                         static_cast<std::uint8_t>(pid >> 8),
                         0,
                         1,
                         1,
                         2,
                         static_cast<std::uint8_t>(serial.empty() ? 0 : 3),
                         1};
  // Configuration 1 with one interface (9 + 9 bytes).
  d.configs.push_back({9, 2, 18, 0, 1, 1, 0, 0x80, 50,  //
                       9, 4, 0, 0, 0, interface_class, 0, 0, 0});
  if (!serial.empty()) {
    wire::Bytes descriptor{static_cast<std::uint8_t>(2 + 2 * serial.size()), 3};
    for (char c : serial) descriptor.insert(descriptor.end(), {static_cast<std::uint8_t>(c), 0});
    d.strings.push_back({3, 0x0409, descriptor});
  }
  return d;
}

const wire::DeviceInfo kMouse = device(0x046d, 0xc52b, 0, 0x03, "MOUSE1", 1, {1, 2});
const wire::DeviceInfo kStick = device(0x0781, 0x5567, 0, 0x08, "ABC123", 1, {1, 3});
const wire::DeviceInfo kBoard = device(0x1209, 0x0001, 0xff, 0xff, "", 2, {4});

bool allows(const std::string& rule, const wire::DeviceInfo& d) {
  auto parsed = DeviceRule::parse(rule);
  INFO(rule << ": " << (parsed ? "" : parsed.error()));
  REQUIRE(parsed);
  return parsed->matches(d);
}

DevicePolicy policy(const std::string& toml) {
  auto parsed = DevicePolicy::parse(toml, "agent.toml");
  INFO(toml << "\n" << (parsed ? "" : parsed.error()));
  REQUIRE(parsed);
  return *parsed;
}

std::string error_of(const std::string& toml) {
  auto parsed = DevicePolicy::parse(toml, "agent.toml");
  REQUIRE_FALSE(parsed);
  return parsed.error();
}

const std::string kAlice = "SHA256:" + std::string(43, 'A');
const std::string kBob = "SHA256:" + std::string(42, 'B') + "/";

PolicyClient tls(const std::string& fingerprint, const std::string& name = "") {
  return PolicyClient{true, fingerprint, name};
}

}  // namespace

TEST_CASE("device rules: VID:PID, class, serial and port path") {
  CHECK(allows("046d:c52b", kMouse));
  CHECK_FALSE(allows("046d:c52b", kStick));
  CHECK(allows("046D:C52B", kMouse));  // hex in either case
  CHECK(allows("1209:*", kBoard));
  CHECK_FALSE(allows("1209:*", kMouse));
  CHECK(allows("*:5567", kStick));
  CHECK(allows("*", kMouse));
  // Class: the device's own or any interface's.
  CHECK(allows("class=08", kStick));
  CHECK(allows("class=03", kMouse));
  CHECK_FALSE(allows("class=08", kMouse));
  CHECK(allows("class=ff", kBoard));
  CHECK(allows("class=FF", kBoard));
  // Serial: the serial number string, exactly.
  CHECK(allows("serial=ABC123", kStick));
  CHECK_FALSE(allows("serial=ABC12", kStick));
  CHECK_FALSE(allows("serial=abc123", kStick));
  CHECK_FALSE(allows("serial=ABC123", kBoard));  // no serial at all
  // Port path: the device there, and what hangs below it.
  CHECK(allows("port=1-1.2", kMouse));
  CHECK_FALSE(allows("port=1-1.2", kStick));
  CHECK(allows("port=1-1", kMouse));
  CHECK(allows("port=1-1", kStick));
  CHECK_FALSE(allows("port=2-1", kMouse));
  CHECK(allows("port=2-4", kBoard));
  CHECK_FALSE(allows("port=1-1.2.1", kMouse));
}

TEST_CASE("a bad device rule says what is wrong and what is expected") {
  auto error = [](const std::string& rule) {
    auto parsed = DeviceRule::parse(rule);
    REQUIRE_FALSE(parsed);
    return parsed.error();
  };
  CHECK(error("046d") ==
        "'046d' is not a device rule: expected VID:PID in hex (046d:c52b, 1209:*, or * for every "
        "device), class=HH, serial=TEXT or port=BUS-PORT[.PORT...]");
  CHECK(error("046d:c52").find("'046d:c52' is not a device rule") == 0);
  CHECK(error("mouse").find("'mouse' is not a device rule") == 0);
  CHECK(error("046d:c52b,1209:*") ==
        "'046d:c52b,1209:*' is not one device rule: write one per string");
  CHECK(error("") == "'' is not one device rule: write one per string");
  CHECK(error("class=8") ==
        "'class=8': a class is two hex digits, as in class=08 (mass storage) or class=ff");
  CHECK(error("class=0x08").find("two hex digits") != std::string::npos);
  CHECK(error("serial=") == "'serial=': no serial number after it");
  for (const char* bad : {"port=1", "port=1-", "port=1-1.", "port=0-1", "port=1-0", "port=a-1",
                          "port=1-1.2.3.4.5.6.7.8", "port=256-1"}) {
    INFO(bad);
    CHECK(error(bad) == std::string("'") + bad +
                            "': a port path is BUS-PORT[.PORT...] in decimal, as Linux names it "
                            "(port=1-1.2)");
  }
}

TEST_CASE("no [[allow]] table: every client may use every device") {
  const DevicePolicy none = policy("listen = \"0.0.0.0:3241\"\nexport = \"*\"\n");
  CHECK_FALSE(none.restricts());
  for (const PolicyClient& client : {tls(kAlice), PolicyClient{}}) {
    const auto rights = none.rights_for(client);
    CHECK(rights.everything());
    CHECK(rights.may_use(kMouse));
    CHECK(rights.describe() == "every device");
  }
}

TEST_CASE("a client may use the union of the tables that name it, and nothing if none does") {
  const DevicePolicy p = policy(R"(
listen = "0.0.0.0:3241"

[[allow]]
clients = [")" + kAlice + R"(", "bob@desk"]
devices = ["046d:c52b"]

[[allow]]
clients = ["alice@laptop"]
devices = ["class=08", "port=2-4"]

[[allow]]
clients = ["plaintext"]
devices = ["serial=ABC123"]
)");
  REQUIRE(p.restricts());
  CHECK(p.table_count() == 3);

  // By fingerprint, and by name: both tables.
  const auto alice = p.rights_for(tls(kAlice, "alice@laptop"));
  CHECK(alice.may_use(kMouse));
  CHECK(alice.may_use(kStick));
  CHECK(alice.may_use(kBoard));
  CHECK(alice.describe() == "046d:c52b, class=08, port=2-4");
  // By name only.
  const auto bob = p.rights_for(tls(kBob, "bob@desk"));
  CHECK(bob.may_use(kMouse));
  CHECK_FALSE(bob.may_use(kStick));
  CHECK_FALSE(bob.may_use(kBoard));
  // Named by none: nothing (default deny).
  const auto stranger = p.rights_for(tls(kBob, "carol"));
  CHECK(stranger.nothing());
  CHECK_FALSE(stranger.may_use(kMouse));
  CHECK(stranger.describe() == "no device");
  // A TLS client's name is never "plaintext" to the policy; a plaintext client has no key.
  CHECK(p.rights_for(tls(kBob, "plaintext")).nothing());
  const auto plain = p.rights_for(PolicyClient{});
  CHECK(plain.may_use(kStick));
  CHECK_FALSE(plain.may_use(kMouse));
}

TEST_CASE("the wildcard as a client names every client, as a device every device") {
  const DevicePolicy p = policy(R"(
[[allow]]
clients = ["*"]
devices = ["1209:*"]

[[allow]]
clients = [")" + kAlice + R"("]
devices = ["*"]
)");
  CHECK(p.rights_for(PolicyClient{}).may_use(kBoard));
  CHECK_FALSE(p.rights_for(PolicyClient{}).may_use(kMouse));
  CHECK(p.rights_for(tls(kBob)).describe() == "1209:*");
  CHECK(p.rights_for(tls(kAlice)).everything());
}

TEST_CASE("a bad [[allow]] table names the file, the line, the table and the entry") {
  CHECK(error_of("[[allow]]\nclients = [\"*\"]\ndevices = [\"1209:*\", \"usb-stick\"]\n") ==
        "agent.toml:3: [[allow]] table 1: devices: 'usb-stick' is not a device rule: expected "
        "VID:PID in hex (046d:c52b, 1209:*, or * for every device), class=HH, serial=TEXT or "
        "port=BUS-PORT[.PORT...]");
  CHECK(error_of("[[allow]]\nclients = [\"*\"]\ndevices = [\"*\"]\n\n[[allow]]\nclients = "
                 "[\"SHA256:abc\"]\ndevices = [\"*\"]\n") ==
        "agent.toml:6: [[allow]] table 2: clients: 'SHA256:abc' is not a key fingerprint: "
        "expected SHA256: and 43 base64 characters, as the agent logs them");
  CHECK(error_of("[[allow]]\nclients = [\"\"]\ndevices = [\"*\"]\n") ==
        "agent.toml:2: [[allow]] table 1: clients: an empty client name");
  CHECK(error_of("[[allow]]\nclients = [\" bob\"]\ndevices = [\"*\"]\n") ==
        "agent.toml:2: [[allow]] table 1: clients: ' bob': a client name has no surrounding "
        "blanks and no line break");
  CHECK(error_of("[[allow]]\ndevices = [\"*\"]\n") ==
        "agent.toml:1: [[allow]] table 1: no 'clients' list");
  CHECK(error_of("[[allow]]\nclients = [\"*\"]\n") ==
        "agent.toml:1: [[allow]] table 1: no 'devices' list");
  CHECK(error_of("[[allow]]\nclients = \"*\"\ndevices = [\"*\"]\n") ==
        "agent.toml:2: [[allow]] table 1: 'clients' must be a list of strings (clients = "
        "[\"...\"])");
  CHECK(error_of("[[allow]]\nclients = [\"*\"]\ndevices = [1209]\n") ==
        "agent.toml:3: [[allow]] table 1: 'devices' must be a list of strings (devices = "
        "[\"...\"])");
  CHECK(error_of("[[allow]]\nclients = [\"*\"]\ndevices = []\n") ==
        "agent.toml:3: [[allow]] table 1: 'devices' is empty");
  // A setting written after an [[allow]] belongs to the table, as TOML reads it.
  CHECK(error_of("[[allow]]\nclients = [\"*\"]\ndevices = [\"*\"]\nlisten = \":3241\"\n") ==
        "agent.toml:4: [[allow]] table 1: unknown key 'listen' (a table has clients and devices; "
        "the agent's other settings go above the first [[allow]])");
  CHECK(error_of("[allow]\nclients = [\"*\"]\n") ==
        "agent.toml:1: 'allow' must be [[allow]] tables (each with clients = [...] and devices = "
        "[...])");
  CHECK(error_of("allow = 3\n").find("'allow' must be [[allow]] tables") != std::string::npos);
  // TOML itself.
  CHECK(error_of("[[allow]]\nclients = [\"*\"\n").starts_with("agent.toml:"));
}

TEST_CASE("a policy file that cannot be read is one clear error") {
  auto missing = DevicePolicy::load("/nonexistent/agent.toml");
  REQUIRE_FALSE(missing);
  CHECK(missing.error() == "/nonexistent/agent.toml: cannot read it");
}

TEST_CASE("the serial number is decoded from the record's string descriptor") {
  CHECK(agent::serial_number(kStick) == "ABC123");
  CHECK_FALSE(agent::serial_number(kBoard));
  wire::DeviceInfo odd = kStick;
  odd.strings[0].descriptor = {2, 3};  // an empty string
  CHECK(agent::serial_number(odd) == "");
  odd.strings[0].descriptor = {1};  // malformed: too short to hold its header
  CHECK_FALSE(agent::serial_number(odd));
}
