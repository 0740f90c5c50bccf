// Bad input never takes the agent down: malformed frames close that connection with a log line,
// bad flags give one clear line, and the agent shuts down cleanly on a signal.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>
#include <catch2/catch.hpp>
#include <csignal>
#include <set>

#include "support/agent_process.h"
#include "support/wire_client.h"
#include "urb_helpers.h"

#include <thread>

using namespace usbnet;
using namespace usbnet::test;

namespace {

// Sends `frame` on a fresh connection (after a handshake when `hello`) and expects the agent to
// answer with a protocol ERROR and close that connection, naming `fault` in its log.
void expect_rejected(AgentProcess& agent, const wire::Bytes& frame, const std::string& fault,
                     bool hello = true) {
  WireClient c(agent.port());
  if (hello) c.handshake();
  c.send_raw(frame);
  auto answer = c.receive();
  REQUIRE(answer);
  REQUIRE(answer->as<wire::Error>());
  CHECK(answer->as<wire::Error>()->id == 0);
  CHECK(answer->as<wire::Error>()->text.find(fault) != std::string::npos);
  CHECK(c.wait_closed());
  CHECK(agent.process().wait_for_output(fault, std::chrono::seconds(5)));
}

wire::Bytes frame_of(wire::Bytes body) {
  const auto n = static_cast<std::uint32_t>(body.size());
  wire::Bytes f{static_cast<std::uint8_t>(n), static_cast<std::uint8_t>(n >> 8),
                static_cast<std::uint8_t>(n >> 16), static_cast<std::uint8_t>(n >> 24)};
  f.insert(f.end(), body.begin(), body.end());
  return f;
}

}  // namespace

TEST_CASE("malformed frames close only their own connection") {
  AgentProcess agent;
  WireClient bystander(agent.port());
  bystander.handshake();
  const std::uint32_t h = open_claimed(bystander, loopback_device::kProductId);
  REQUIRE(h);

  expect_rejected(agent, frame_of({'G', 'E', 'T', ' ', '/', ' ', 'H', 'T', 'T', 'P'}), "bad magic",
                  false);
  expect_rejected(agent, {0xff, 0xff, 0xff, 0x7f}, "frame too large");
  wire::Bytes unknown = wire::encode(wire::ListDevices{5});
  unknown[8] = 0x99;
  expect_rejected(agent, unknown, "unknown type");
  wire::Bytes reserved = wire::encode(wire::ListDevices{5});
  reserved[10] = 1;
  expect_rejected(agent, reserved, "reserved not zero");
  expect_rejected(agent, wire::encode(wire::UrbData{77, 0, wire::Bytes(8)}), "unknown transfer");
  wire::Bytes setup = wire::encode(control(1, 0x80, 6, 0x100, 0, 18));
  setup[4 + 12 + 6] = 0;  // setup_len 0 on a control URB
  expect_rejected(agent, setup, "bad setup length");

  // A piece that does not fit its transfer.
  {
    WireClient c(agent.port());
    c.handshake();
    wire::UrbSubmit out = transfer(wire::UrbType::Bulk, 1, 0x01, 100);
    out.trans_id = 40;
    const wire::Bytes first(60);
    out.payload = first;
    c.send(out);
    c.send(wire::UrbData{40, 60, wire::Bytes(41)});
    auto answer = c.receive();
    REQUIRE(answer);
    REQUIRE(answer->as<wire::Error>());
    CHECK(answer->as<wire::Error>()->text.find("piece overflow") != std::string::npos);
    CHECK(c.wait_closed());
  }

  // The agent and the other client never noticed.
  auto still = run_urb(bystander, transfer(wire::UrbType::Bulk, h, 0x82, 100));
  REQUIRE(still);
  CHECK(still->status == wire::UrbStatus::Completed);
  CHECK(agent.process().running());
}

TEST_CASE("a frame cut off in the middle, then silence: the agent waits, then closes on death") {
  AgentProcess agent({"--simulate", "loopback", "--dead-after", "600"});
  WireClient c(agent.port());
  const wire::Bytes hello = wire::encode(wire::Hello{1, 1, 0, 0, wire::AuthMethod::None, {}, "x"});
  c.send_raw(wire::ByteView(hello).first(10));
  CHECK(c.wait_closed(std::chrono::seconds(5)));
  CHECK(agent.process().running());
}

TEST_CASE("bad flags give one clear line and exit code 2") {
  struct Case {
    std::vector<std::string> args;
    std::string message;
  };
  const std::vector<Case> cases = {
      {{"--listen", "localhost:99999"}, "--listen: 'localhost:99999' is not HOST:PORT"},
      {{"--export", "12:34"}, "--export: '12:34' is not a device"},
      {{"--simulate", "toaster"},
       "'toaster' is not a simulated device (there are: audio, dfu, ftdi, loopback, "
       "loopback3, mouse, usbtmc)"},
      {{"--simulate", "mouse,mouse,mouse,mouse,mouse,mouse,mouse,mouse"},
       "--simulate: at most 7 simulated devices (the simulated root hub has 7 ports), not 8"},
      {{"--log-level", "loud"}, "--log-level: 'loud'"},
      {{"--piece-size", "10"}, "--piece-size"},
      {{"--frobnicate"}, "frobnicate"},
  };
  for (const Case& c : cases) {
    std::vector<std::string> argv{Programs::agent()};
    argv.insert(argv.end(), c.args.begin(), c.args.end());
    const RunResult r = run(argv);
    INFO(r.err);
    CHECK(r.status == 2);
    CHECK(r.err.find(c.message) != std::string::npos);
    CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
  }
}

TEST_CASE("a port in use is one clear line") {
  AgentProcess first;
  const RunResult r = run({Programs::agent(), "--no-usb", "--listen", first.endpoint()});
  CHECK(r.status == 1);
  CHECK(r.err.find("cannot listen on " + first.endpoint()) != std::string::npos);
  CHECK(r.err.find("in use") != std::string::npos);
}

TEST_CASE("--help describes every option") {
  const RunResult r = run({Programs::agent(), "--help"});
  CHECK(r.status == 0);
  for (const char* option : {"--listen", "--export", "--simulate", "--no-usb", "--log-level",
                             "--heartbeat", "--dead-after", "--piece-size"}) {
    CHECK(r.out.find(option) != std::string::npos);
  }
}

TEST_CASE("SIGTERM and SIGINT shut the agent down cleanly, cancelling transfers") {
  for (int signal : {SIGTERM, SIGINT}) {
    AgentProcess agent;
    WireClient c(agent.port());
    c.handshake();
    const std::uint32_t h = open_claimed(c, loopback_device::kProductId);
    const std::uint32_t waiting = send_urb(c, transfer(wire::UrbType::Bulk, h, 0x81, 512, 0));
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    ::kill(agent.process().pid(), signal);
    auto ended = wait_complete(c, waiting);
    REQUIRE(ended);
    CHECK(ended->status == wire::UrbStatus::Cancelled);
    CHECK(c.wait_closed());
    CHECK(agent.process().wait(std::chrono::seconds(5)) == 0);
    CHECK(agent.process().err().find("shutting down") != std::string::npos);
  }
}

TEST_CASE("the export filter hides what it does not name") {
  AgentProcess agent({"--simulate", "loopback,mouse,audio", "--export", "1209:0002,1209:0003"});
  WireClient c(agent.port());
  c.handshake();
  std::set<int> products;
  const auto devices = c.list();
  for (const auto& d : without_hubs(devices)) products.insert(d.device_descriptor[10]);
  CHECK(products == std::set<int>{2, 3});
  // The root hub they hang from comes with them, though the filter does not name it.
  REQUIRE(devices.size() == 3);
  CHECK(devices[0].device_descriptor[4] == 0x09);
  CHECK(devices[1].parent_id == devices[0].device_id);
  CHECK(devices[2].parent_id == devices[0].device_id);
}

TEST_CASE("an export filter that names only a hub exports the hub alone") {
  AgentProcess agent({"--simulate", "loopback,mouse", "--export", "1d6b:0002"});
  WireClient c(agent.port());
  c.handshake();
  const auto devices = c.list();
  REQUIRE(devices.size() == 1);
  CHECK(devices[0].device_descriptor[4] == 0x09);
  CHECK(devices[0].parent_id == 0);
}

TEST_CASE("usbnet list prints what the agent exports, lsusb style") {
  AgentProcess agent({"--simulate", "loopback,mouse"});
  const RunResult r = run({Programs::cli(), "list", "--agent", agent.endpoint()});
  CHECK(r.status == 0);
  // The root hub first, as lsusb lists root hubs, then the devices on its ports.
  CHECK(r.out.rfind("Bus 100 Device 001: ID 1d6b:0002 usbnet usbnet simulated root hub\n"
                    "    device 1, port -, 480M, root hub, serial usbnet-sim\n",
                    0) == 0);
  CHECK(r.out.find("Bus 100 Device 002: ID 1209:0001 usbnet Loopback") != std::string::npos);
  CHECK(r.out.find("Bus 100 Device 003: ID 1209:0002 usbnet Boot Mouse") != std::string::npos);
  CHECK(r.out.find("port 1, 480M, parent 1, serial LB0001") != std::string::npos);
  CHECK(r.out.find("port 2, 12M, parent 1, serial MS0001") != std::string::npos);
  const RunResult down =
      run({Programs::cli(), "list", "--agent", "127.0.0.1:1", "--timeout", "500"});
  CHECK(down.status == 1);
  CHECK(down.err.find("cannot list 127.0.0.1:1") != std::string::npos);
}
