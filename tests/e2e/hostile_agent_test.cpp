// libusbnet.so against an agent that misbehaves: garbage, frames over the cap, completions that
// do not fit, silence, broken descriptors. The program under the shim must get a clear error
// (one warning line, NO_DEVICE for what was in flight) and live on; it must never hang.
#include <catch2/catch.hpp>
#include <thread>

#include "support/agent_process.h"
#include "support/fake_agent.h"
#include "support/shim_env.h"
#include "support/text.h"

using namespace usbnet;
using namespace usbnet::test;

namespace {

std::map<std::string, std::string> env_for(const FakeAgent& fake) {
  return {{"LD_PRELOAD", Programs::preload()},
          {"USBNET_AGENT", fake.endpoint()},
          {"USBNET_DEVICES", "1209:*"},
          {"USBNET_LOG", kUnset}};
}

// The simulated devices as a real agent describes them, for the fake one to announce.
std::vector<wire::DeviceInfo> real_devices() {
  AgentProcess agent;
  WireClient client(agent.port());
  client.handshake();
  return client.list();
}

// Plays a well-behaved agent (device list, every request granted) until the shim submits a
// URB; returns its trans_id, or nullopt if the connection ended first.
std::optional<std::uint32_t> serve_until_urb(WireClient& peer,
                                             const std::vector<wire::DeviceInfo>& devices) {
  while (auto received = peer.receive(std::chrono::seconds(10))) {
    if (const auto* list = received->as<wire::ListDevices>()) {
      peer.send(wire::DeviceList{list->id, devices});
    } else if (const auto* urb = received->as<wire::UrbSubmit>()) {
      return urb->trans_id;
    } else if (const std::uint32_t id = wire::id_of(received->message); id != 0) {
      peer.send(wire::Reply{id, 1});
    }
  }
  return std::nullopt;
}

// Runs wait_for_data (a bulk read with no timeout) against the fake agent, which misbehaves
// through `misbehave` once the read is submitted; returns the program's output.
std::string read_against(FakeAgent& fake, std::map<std::string, std::string> env,
                         const std::function<void(WireClient&, std::uint32_t)>& misbehave,
                         std::uint32_t heartbeat_ms = 5000) {
  const auto devices = real_devices();
  Process program({Programs::test_program("wait_for_data"), "0"}, env);
  auto peer = fake.accept();
  REQUIRE(peer);
  REQUIRE(answer_hello(*peer, heartbeat_ms));
  const auto urb = serve_until_urb(*peer, devices);
  REQUIRE(urb);
  misbehave(*peer, *urb);
  const auto status = program.wait(std::chrono::seconds(20));
  INFO(program.out() << program.err());
  REQUIRE(status);
  CHECK(*status == 0);
  return program.out() + program.err();
}

}  // namespace

TEST_CASE("an agent that answers HELLO with garbage is one warning line, and local devices stay") {
  FakeAgent fake;
  Process program({Programs::example("list_devices")}, env_for(fake));
  auto peer = fake.accept();
  REQUIRE(peer);
  REQUIRE(peer->receive());  // its HELLO
  const wire::Bytes garbage = {12,   0,    0,    0,    0xab, 0xab, 0xab, 0xab,
                               0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab, 0xab};
  peer->send_raw(garbage);
  const auto status = program.wait(std::chrono::seconds(20));
  INFO(program.out() << program.err());
  REQUIRE(status);
  CHECK(*status == 0);
  const RunResult plain = run({Programs::example("list_devices")});
  CHECK(program.out() == plain.out);
  CHECK(program.err().find("bad magic") != std::string::npos);
  CHECK(count(program.err(), "\n") == 1);
}

TEST_CASE("a frame length over the cap closes the connection before anything is allocated") {
  FakeAgent fake;
  const std::string out = read_against(fake, env_for(fake), [](WireClient& peer, std::uint32_t) {
    const wire::Bytes huge = {0xf0, 0xff, 0xff, 0xff, 1, 2, 3, 4};
    peer.send_raw(huge);
  });
  CHECK(out.find("result LIBUSB_ERROR_NO_DEVICE transferred 0") != std::string::npos);
  CHECK(out.find("frame too large") != std::string::npos);
}

TEST_CASE("a completion with more bytes than the buffer is a protocol error, not an overrun") {
  FakeAgent fake;
  const std::string out =
      read_against(fake, env_for(fake), [](WireClient& peer, std::uint32_t trans_id) {
        static const wire::Bytes junk(4096, 0xee);
        wire::UrbComplete c;
        c.trans_id = trans_id;
        c.actual_length = c.data_len = static_cast<std::uint32_t>(junk.size());
        c.payload = junk;
        peer.send(c);
      });
  CHECK(out.find("result LIBUSB_ERROR_NO_DEVICE transferred 0") != std::string::npos);
  CHECK(out.find("carries 4096 bytes for a buffer of 512") != std::string::npos);
}

TEST_CASE("a completion for a URB that was never submitted is a protocol error") {
  FakeAgent fake;
  const std::string out =
      read_against(fake, env_for(fake), [](WireClient& peer, std::uint32_t trans_id) {
        wire::UrbComplete c;
        c.trans_id = trans_id + 1000;
        peer.send(c);
      });
  CHECK(out.find("result LIBUSB_ERROR_NO_DEVICE transferred 0") != std::string::npos);
  CHECK(out.find("unknown trans_id") != std::string::npos);
}

TEST_CASE("an agent that falls silent is declared lost: the read without timeout ends") {
  FakeAgent fake;
  auto env = env_for(fake);
  env["USBNET_HEARTBEAT_MS"] = "300";
  // The connection stays open, but nothing more comes: no completion, no heartbeat.
  const std::string out = read_against(
      fake, env, [](WireClient&, std::uint32_t) {}, 300);
  CHECK(out.find("result LIBUSB_ERROR_NO_DEVICE transferred 0") != std::string::npos);
  CHECK(out.find("lost the agent") != std::string::npos);
}

TEST_CASE(
    "an agent whose parent_ids form a loop or name nothing: get_parent answers, never hangs") {
  auto devices = real_devices();  // the root hub, then the loopback and mouse devices on it
  REQUIRE(devices.size() == 3);
  // The hub claims to hang from the loopback device, which hangs from the hub; the mouse hangs
  // from a device that was never listed.
  devices[0].parent_id = devices[1].device_id;
  devices[2].parent_id = 999;
  FakeAgent fake;
  Process program({Programs::test_program("topology")}, env_for(fake));
  auto peer = fake.accept();
  REQUIRE(peer);
  REQUIRE(answer_hello(*peer, 5000));
  CHECK_FALSE(serve_until_urb(*peer, devices));  // serves until the program is done
  const auto status = program.wait(std::chrono::seconds(20));
  INFO(program.out() << program.err());
  REQUIRE(status);
  // The shim reports what the agent said, and the walk up from the loop ends.
  CHECK(*status != 0);
  CHECK(program.out().find("FAIL 1d6b:0002 on bus 201 port -: a root hub has no parent") !=
        std::string::npos);
  CHECK(program.out().find("FAIL 1209:0002 on bus 201 port 2: its parent is in the device list") !=
        std::string::npos);
  CHECK(program.out().find("ok   1209:0001 on bus 201 port 1: its parent is a hub") !=
        std::string::npos);
}
