// usbnet-agent over a real TCP connection: the handshake, the device list, every device request,
// interface ownership across clients, and what a client that disappears leaves behind.
#include <catch2/catch.hpp>
#include <csignal>
#include <set>
#include <thread>

#include "support/agent_process.h"
#include "support/wire_client.h"
#include "urb_helpers.h"

using namespace usbnet;
using namespace usbnet::test;
using namespace usbnet::wire::error_code;

TEST_CASE("the agent answers HELLO with its own version and capabilities") {
  AgentProcess agent;
  WireClient c(agent.port());
  const wire::Hello hello = c.handshake();
  CHECK(hello.version == wire::kProtocolVersion);
  CHECK((hello.capabilities & wire::kCapIso) != 0);
  CHECK((hello.capabilities & wire::kCapHotplug) != 0);
  CHECK(hello.heartbeat_ms == 5000);
  CHECK(hello.name.rfind("usbnet-agent", 0) == 0);
}

TEST_CASE("a HELLO of another protocol version is refused with NOT_SUPPORTED") {
  AgentProcess agent;
  WireClient c(agent.port());
  wire::Bytes hello = wire::encode(wire::Hello{1, 1, 0, 5000, wire::AuthMethod::None, {}, "v2"});
  hello[16] = 2;  // version field
  c.send_raw(hello);
  auto answer = c.receive();
  REQUIRE(answer);
  REQUIRE(answer->as<wire::Error>());
  CHECK(answer->as<wire::Error>()->code == kNotSupported);
  CHECK(answer->as<wire::Error>()->text.find("version 1") != std::string::npos);
  CHECK(c.wait_closed());
}

TEST_CASE("a request before HELLO closes the connection, and the agent lives on") {
  AgentProcess agent;
  {
    WireClient c(agent.port());
    c.send(wire::ListDevices{7});
    auto answer = c.receive();
    REQUIRE(answer);
    REQUIRE(answer->as<wire::Error>());
    CHECK(answer->as<wire::Error>()->text.find("before HELLO") != std::string::npos);
    CHECK(c.wait_closed());
  }
  CHECK(agent.process().wait_for_output("protocol violation: LIST_DEVICES before HELLO",
                                        std::chrono::seconds(5)));
  WireClient other(agent.port());
  other.handshake();
  CHECK(without_hubs(other.list()).size() == 2);
}

TEST_CASE("the device list carries every simulated device with its raw descriptors") {
  AgentProcess agent({"--simulate", "loopback,mouse,audio,loopback3"});
  WireClient c(agent.port());
  c.handshake();
  const auto devices = without_hubs(c.list());
  REQUIRE(devices.size() == 4);
  std::set<std::uint16_t> products;
  for (const auto& d : devices) {
    CHECK(d.device_id != 0);
    CHECK(d.bus_number == 100);
    CHECK(d.port_numbers.size() == 1);
    CHECK(d.active_config == 1);
    CHECK(d.device_descriptor[0] == 18);
    CHECK(topology::vendor_id(d) == loopback_device::kVendorId);
    products.insert(
        static_cast<std::uint16_t>(d.device_descriptor[10] | d.device_descriptor[11] << 8));
    REQUIRE(d.configs.size() == 1);
    // wTotalLength matches the raw configuration's size.
    CHECK(static_cast<std::size_t>(d.configs[0][2] | d.configs[0][3] << 8) == d.configs[0].size());
    REQUIRE(!d.strings.empty());
    CHECK(d.strings[0].index == 0);
    CHECK(d.strings[0].descriptor == wire::Bytes{4, 3, 0x09, 0x04});
  }
  CHECK(products == std::set<std::uint16_t>{1, 2, 3, 4});
}

TEST_CASE("the device list carries the simulated root hub first, and each device hangs from it") {
  AgentProcess agent({"--simulate", "loopback,mouse"});
  WireClient c(agent.port());
  c.handshake();
  const auto devices = c.list();
  REQUIRE(devices.size() == 3);
  const wire::DeviceInfo& hub = devices[0];
  CHECK(hub.device_descriptor[4] == 0x09);  // bDeviceClass: hub
  CHECK(topology::vendor_id(hub) == 0x1d6b);
  CHECK(topology::product_id(hub) == 0x0002);
  CHECK(hub.parent_id == 0);
  CHECK(hub.bus_number == 100);
  CHECK(hub.device_address == 1);
  CHECK(hub.port_numbers.empty());
  CHECK(hub.speed == 3);
  CHECK(hub.active_config == 1);
  // One interface of class hub with its status-change interrupt endpoint.
  REQUIRE(hub.configs.size() == 1);
  const wire::Bytes& config = hub.configs[0];
  REQUIRE(config.size() == 9 + 9 + 7);
  CHECK(config[9 + 1] == 0x04);
  CHECK(config[9 + 5] == 0x09);
  CHECK(config[18 + 1] == 0x05);
  CHECK(config[18 + 2] == 0x81);
  CHECK(config[18 + 3] == 0x03);
  bool named = false;
  for (const auto& s : hub.strings) {
    named |= s.index == hub.device_descriptor[15] &&
             s.descriptor.size() == 2 + 2 * std::string("usbnet simulated root hub").size();
  }
  CHECK(named);
  // The devices: on the hub's ports, in --simulate order, at addresses after the hub's.
  std::set<std::uint8_t> addresses{hub.device_address};
  for (std::size_t i = 1; i < devices.size(); ++i) {
    const wire::DeviceInfo& d = devices[i];
    CHECK(d.parent_id == hub.device_id);
    CHECK(d.device_id > hub.device_id);  // a hub before its children
    CHECK(d.bus_number == hub.bus_number);
    CHECK(d.port_numbers == std::vector<std::uint8_t>{static_cast<std::uint8_t>(i)});
    CHECK(addresses.insert(d.device_address).second);
  }
}

TEST_CASE("a hub cannot be opened: ACCESS, with a message that says why") {
  AgentProcess agent({"--simulate", "loopback"});
  WireClient c(agent.port());
  c.handshake();
  const auto devices = c.list();
  REQUIRE(devices.size() == 2);
  REQUIRE(devices[0].device_descriptor[4] == 0x09);
  const std::uint32_t id = c.next_id();
  c.send(wire::Open{id, devices[0].device_id});
  auto answer = c.receive_id(id);
  REQUIRE(answer);
  REQUIRE(answer->as<wire::Error>());
  CHECK(answer->as<wire::Error>()->code == kAccess);
  CHECK(answer->as<wire::Error>()->text.find("is a hub") != std::string::npos);
  CHECK(agent.process().wait_for_output("a hub", std::chrono::seconds(5)));
  // The device below it opens as before.
  CHECK(c.request(wire::Open{0, devices[1].device_id}));
}

TEST_CASE("every device request is answered") {
  AgentProcess agent({"--simulate", "audio"});
  WireClient c(agent.port());
  c.handshake();
  const auto devices = without_hubs(c.list());
  REQUIRE(devices.size() == 1);
  auto handle = c.request(wire::Open{0, devices[0].device_id});
  REQUIRE(handle);
  const std::uint32_t h = *handle;

  CHECK(c.request(wire::GetConfiguration{0, h}).value() == 1);
  CHECK(c.request(wire::KernelDriver{0, h, wire::KernelDriverOp::Query, 0}).value() == 0);
  CHECK(c.request(wire::KernelDriver{0, h, wire::KernelDriverOp::Detach, 0}).error() == kNotFound);
  CHECK(c.request(wire::ClaimInterface{0, h, 0}));
  CHECK(c.request(wire::ClaimInterface{0, h, 1}).error() == kNotFound);  // no interface 1
  CHECK(c.request(wire::SetAltSetting{0, h, 0, 1}));
  CHECK(c.request(wire::SetAltSetting{0, h, 0, 2}).error() == kNotFound);
  CHECK(c.request(wire::ClearHalt{0, h, 0x81}));
  CHECK(c.request(wire::ClearHalt{0, h, 0x85}).error() == kNotFound);
  // Not while an interface is claimed (as on Linux).
  CHECK(c.request(wire::SetConfiguration{0, h, 1}).error() == kBusy);
  CHECK(c.request(wire::ResetDevice{0, h}));
  CHECK(c.request(wire::ReleaseInterface{0, h, 0}));
  CHECK(c.request(wire::ReleaseInterface{0, h, 0}).error() == kNotFound);  // not claimed now
  CHECK(c.request(wire::SetConfiguration{0, h, -1}));
  CHECK(c.request(wire::GetConfiguration{0, h}).value() == 0);
  CHECK(c.request(wire::SetConfiguration{0, h, 7}).error() == kNotFound);
  CHECK(c.request(wire::SetConfiguration{0, h, 1}));
  CHECK(c.request(wire::Close{0, h}));
  CHECK(c.request(wire::Close{0, h}).error() == kNotFound);
  CHECK(c.request(wire::GetConfiguration{0, h}).error() == kNotFound);
  CHECK(c.request(wire::Open{0, 999}).error() == kNoDevice);
}

TEST_CASE("an interface claimed by one client is busy for another until released") {
  AgentProcess agent;
  WireClient first(agent.port()), second(agent.port());
  first.handshake();
  second.handshake();
  const std::uint32_t device = without_hubs(first.list())[0].device_id;
  const std::uint32_t h1 = first.request(wire::Open{0, device}).value();
  const std::uint32_t h2 = second.request(wire::Open{0, device}).value();
  REQUIRE(first.request(wire::ClaimInterface{0, h1, 0}));
  CHECK(second.request(wire::ClaimInterface{0, h2, 0}).error() == kBusy);
  CHECK(second.request(wire::SetConfiguration{0, h2, 1}).error() == kBusy);
  REQUIRE(first.request(wire::ReleaseInterface{0, h1, 0}));
  CHECK(second.request(wire::ClaimInterface{0, h2, 0}));
  CHECK(first.request(wire::ClaimInterface{0, h1, 0}).error() == kBusy);
}

TEST_CASE("two clients racing for one interface: exactly one wins") {
  AgentProcess agent;
  constexpr int kClients = 6;
  std::vector<std::unique_ptr<WireClient>> clients;
  std::vector<std::uint32_t> handles;
  for (int i = 0; i < kClients; ++i) {
    clients.push_back(std::make_unique<WireClient>(agent.port()));
    clients.back()->handshake();
    handles.push_back(
        clients.back()
            ->request(wire::Open{0, without_hubs(clients.back()->list())[0].device_id})
            .value());
  }
  // All claims are on the wire before any answer is read.
  std::vector<std::uint32_t> ids;
  for (int i = 0; i < kClients; ++i) {
    ids.push_back(clients[i]->next_id());
    clients[i]->send(wire::ClaimInterface{ids[i], handles[i], 0});
  }
  int won = 0, busy = 0;
  for (int i = 0; i < kClients; ++i) {
    auto answer = clients[i]->receive_id(ids[i]);
    REQUIRE(answer);
    if (answer->as<wire::Reply>()) ++won;
    if (answer->as<wire::Error>() && answer->as<wire::Error>()->code == kBusy) ++busy;
  }
  CHECK(won == 1);
  CHECK(busy == kClients - 1);
}

TEST_CASE("a client that vanishes mid-transfer releases everything and others go on") {
  AgentProcess agent;
  {
    WireClient doomed(agent.port());
    doomed.handshake();
    const std::uint32_t h = open_claimed(doomed, loopback_device::kProductId);
    REQUIRE(h != 0);
    // A bulk IN on the empty loopback queue: it waits, with no timeout.
    send_urb(doomed, transfer(wire::UrbType::Bulk, h, 0x81, 512, 0));
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    doomed.close();  // gone, without a word
  }
  REQUIRE(
      agent.process().wait_for_output("releasing what the client held", std::chrono::seconds(5)));
  WireClient survivor(agent.port());
  survivor.handshake();
  const std::uint32_t h = open_claimed(survivor, loopback_device::kProductId);
  REQUIRE(h != 0);  // the interface is free again
  const wire::Bytes data = pattern(700);
  auto out = run_urb(survivor, transfer(wire::UrbType::Bulk, h, 0x01, 700), data);
  REQUIRE(out);
  CHECK(out->status == wire::UrbStatus::Completed);
  // The vanished client's pending IN was cancelled, not left to steal this data.
  auto in = run_urb(survivor, transfer(wire::UrbType::Bulk, h, 0x81, 1024));
  REQUIRE(in);
  CHECK(in->status == wire::UrbStatus::Completed);
  CHECK(in->data == data);
}

TEST_CASE("a killed client process is noticed and its claims released") {
  AgentProcess agent;
  // A shell that connects, and is then killed: the kernel closes its socket.
  Process client({"bash", "-c",
                  "exec 3<>/dev/tcp/127.0.0.1/" + std::to_string(agent.port()) + " && sleep 30"});
  REQUIRE(agent.process().wait_for_output("connection accepted", std::chrono::seconds(5)));
  client.kill(SIGKILL);
  CHECK(agent.process().wait_for_output("disconnected", std::chrono::seconds(5)));
}

TEST_CASE("the agent sends heartbeats when idle and drops a silent client") {
  AgentProcess agent({"--simulate", "loopback", "--heartbeat", "200", "--dead-after", "1000"});
  WireClient c(agent.port());
  // A client that announces a 300 ms heartbeat but never sends one.
  c.handshake(300);
  const auto start = std::chrono::steady_clock::now();
  CHECK(c.wait_closed(std::chrono::seconds(5)));
  const auto waited = std::chrono::steady_clock::now() - start;
  CHECK(c.heartbeats() >= 2);                       // the agent's, while it waited
  CHECK(waited >= std::chrono::milliseconds(800));  // three of the client's intervals
  CHECK(agent.process().wait_for_output("nothing received for", std::chrono::seconds(2)));
}
