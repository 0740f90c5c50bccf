// libusbnet.so end to end: unmodified libusb programs (the examples, test programs, and Debian's
// lsusb) run with LD_PRELOAD against a real usbnet-agent serving simulated devices.
#include <catch2/catch.hpp>
#include <csignal>
#include <cstdio>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <thread>

#include <unistd.h>

#include "support/agent_process.h"
#include "support/shim_env.h"
#include "support/text.h"
#include "support/wire_client.h"

using namespace usbnet;
using namespace usbnet::test;

TEST_CASE("the shim exports exactly the functions of libusb 1.0.26, and dlopen and dlmopen") {
  const RunResult ours = run({"nm", "-D", "--defined-only", Programs::shim()});
  const RunResult theirs = run({"bash", "-c",
                                "nm -D --defined-only $(ldconfig -p | "
                                "sed -n 's/.*libusb-1.0.so.0 .*=> //p' | head -1)"});
  REQUIRE(ours.status == 0);
  REQUIRE(theirs.status == 0);
  auto names = [](const std::string& listing) {
    std::set<std::string> out;
    std::istringstream in(listing);
    std::string address, kind, name;
    while (in >> address >> kind >> name) out.insert(name);
    return out;
  };
  auto exported = names(ours.out);
  // dlopen and dlmopen answer a program that loads libusb at run time (dlopen_test.cpp).
  CHECK(exported.erase("dlopen") == 1);
  CHECK(exported.erase("dlmopen") == 1);
  CHECK(exported.size() == 90);
  CHECK(exported == names(theirs.out));
}

TEST_CASE("a plain libusb program lists remote devices with their descriptors") {
  AgentProcess agent({"--simulate", "loopback,mouse,audio,loopback3"});
  const RunResult r = run({Programs::example("list_devices")}, shim_env(agent));
  INFO(r.out << r.err);
  CHECK(r.status == 0);
  CHECK(r.err.empty());                                 // the shim is silent unless asked
  CHECK(r.out.find("5 devices") != std::string::npos);  // the four, and the hub they hang from
  CHECK(r.out.find("ID 1209:0001, high (480 Mbit/s) speed, port 1") != std::string::npos);
  CHECK(std::regex_search(
      r.out, std::regex(R"(Device 001: ID 1d6b:0002, high \(480 Mbit/s\) speed, port\n)")));
  CHECK(r.out.find("manufacturer \"usbnet\", product \"Loopback\", serial \"LB0001\"") !=
        std::string::npos);
  CHECK(r.out.find("endpoint 0x82 IN bulk, wMaxPacketSize 512") != std::string::npos);
  CHECK(r.out.find("extra (9 bytes): 09 21 11 01 00 01 22 34 00") != std::string::npos);  // HID
  CHECK(r.out.find("interface 0 alt 1 \"\": class 0xff/0x00/0x00, 2 endpoints") !=
        std::string::npos);
  CHECK(count(r.out, "SuperSpeed companion: bMaxBurst 15, wBytesPerInterval 0") == 4);
  CHECK(r.out.find("SuperSpeed: wSpeedSupported 0x000e, U1 10, U2 2047") != std::string::npos);
  CHECK(r.out.find("container ID: 75 73 62 66 6e 65 74 00 00 01 00 00 00 00 00 03") !=
        std::string::npos);
}

TEST_CASE("control transfers: standard, vendor, STALL and timeout, as libusb reports them") {
  AgentProcess agent;
  const RunResult r = run({Programs::example("control_demo")}, shim_env(agent));
  INFO(r.out << r.err);
  CHECK(r.status == 0);
  CHECK(count(r.out, "ok  ") == 7);
  CHECK(r.out.find("LIBUSB_ERROR_PIPE") != std::string::npos);
  CHECK(r.out.find("LIBUSB_ERROR_TIMEOUT") != std::string::npos);
}

TEST_CASE("bulk loopback with checksums, source and sink, at high and super speed") {
  AgentProcess agent({"--simulate", "loopback,loopback3"});
  for (const char* device : {"1209:0001", "1209:0004"}) {
    const RunResult r = run({Programs::example("bulk_loopback"), device, "150"}, shim_env(agent));
    INFO(device << "\n" << r.out << r.err);
    CHECK(r.status == 0);
    CHECK(r.out.find("loopback: 150 rounds OK") != std::string::npos);
    CHECK(r.out.find("source: 10 transfers, pattern OK") != std::string::npos);
    CHECK(r.out.find("sink: 655360 bytes received, 0 off pattern") != std::string::npos);
  }
}

TEST_CASE("libusb's semantics hold for remote devices") {
  AgentProcess agent({"--simulate", "loopback,mouse,audio"});
  const RunResult r = run({Programs::test_program("libusb_semantics")}, shim_env(agent));
  INFO(r.out << r.err);
  CHECK(r.status == 0);
  CHECK(r.out.find("0 failures") != std::string::npos);
  CHECK(r.out.find("FAIL") == std::string::npos);
}

TEST_CASE("several threads transfer on different endpoints at once") {
  AgentProcess agent;
  const RunResult r = run({Programs::test_program("threads")}, shim_env(agent));
  INFO(r.out << r.err);
  CHECK(r.status == 0);
  CHECK(r.out.find("threads: 0 failure(s)") != std::string::npos);
}

TEST_CASE("lsusb, a real third-party libusb program, sees the remote devices") {
  AgentProcess agent({"--simulate", "loopback,mouse"});
  const RunResult list = run({"lsusb"}, shim_env(agent));
  CHECK(list.status == 0);
  CHECK(std::regex_search(list.out, std::regex(R"(Bus 2\d\d Device 002: ID 1209:0001)")));
  CHECK(std::regex_search(list.out, std::regex(R"(Bus 2\d\d Device 003: ID 1209:0002)")));
}

TEST_CASE("lsusb -v shows the descriptors the agent serves") {
  AgentProcess agent({"--simulate", "loopback,mouse,loopback3"});
  WireClient wire_client(agent.port());
  wire_client.handshake();
  // (The root hub they hang from cannot be opened: lsusb -v of it shows less, as of a local one
  // for a non-root user.)
  for (const auto& device : without_hubs(wire_client.list())) {
    const auto& d = device.device_descriptor;
    char id[16];
    std::snprintf(id, sizeof id, "%02x%02x:%02x%02x", d[9], d[8], d[11], d[10]);
    const RunResult r = run({"lsusb", "-v", "-d", id}, shim_env(agent));
    INFO(id << "\n" << r.out << r.err);
    CHECK(r.status == 0);
    auto field = [&](const std::string& name, const std::string& value) {
      const std::regex line("\\n\\s+" + name + "\\s+" + value + "\\b");
      return std::regex_search(r.out, line);
    };
    char text[32];
    std::snprintf(text, sizeof text, "%x.%02x", d[3], d[2]);
    CHECK(field("bcdUSB", text));
    CHECK(field("bMaxPacketSize0", std::to_string(d[7])));
    std::snprintf(text, sizeof text, "0x%02x%02x", d[11], d[10]);
    CHECK(field("idProduct", text));
    CHECK(field("bNumConfigurations", std::to_string(d[17])));
    const auto& config = device.configs.at(0);
    std::snprintf(text, sizeof text, "0x%04x", config[2] | config[3] << 8);
    CHECK(field("wTotalLength", text));
    std::snprintf(text, sizeof text, "0x%02x", config[7]);
    CHECK(field("bmAttributes", text));
    // Every endpoint of the raw configuration, in order, with its packet size.
    std::vector<std::string> endpoints;
    for (std::size_t at = 0; at + 1 < config.size(); at += config[at]) {
      if (config[at + 1] != 5) continue;
      std::snprintf(text, sizeof text, "0x%02x", config[at + 2]);
      endpoints.push_back(text);
    }
    std::vector<std::string> shown;
    std::smatch m;
    for (auto it = r.out.cbegin(); std::regex_search(
             it, r.out.cend(), m, std::regex(R"(bEndpointAddress\s+(0x[0-9a-f]{2}))"));
         it = m.suffix().first) {
      shown.push_back(m[1]);
    }
    CHECK(shown == endpoints);
    if (d[10] == 0x04) {
      CHECK(count(r.out, "bMaxBurst              15") == 4);
      CHECK(r.out.find("SuperSpeed USB Device Capability") != std::string::npos);
      CHECK(r.out.find("Container ID") != std::string::npos);
    }
  }
}

TEST_CASE("with USBNET_DEVICES empty the shim changes nothing") {
  AgentProcess agent;
  const RunResult plain = run({Programs::example("list_devices")});
  const RunResult shimmed = run({Programs::example("list_devices")}, shim_env(agent, ""));
  CHECK(shimmed.status == plain.status);
  CHECK(shimmed.out == plain.out);
  CHECK(shimmed.err == plain.err);
  // Nothing connected to the agent either.
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  CHECK(agent.process().err().find("connection accepted") == std::string::npos);
}

TEST_CASE("loading the shim starts no thread and no connection") {
  AgentProcess agent;
  const RunResult r = run({"grep", "^Threads:", "/proc/self/status"}, shim_env(agent));
  CHECK(r.out == "Threads:\t1\n");
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  CHECK(agent.process().err().find("connection accepted") == std::string::npos);
}

TEST_CASE("libusb_get_parent walks from each remote device to its root hub, as the agent's tree") {
  AgentProcess agent({"--simulate", "loopback,mouse"});
  const RunResult r = run({Programs::test_program("topology")}, shim_env(agent));
  INFO(r.out << r.err);
  CHECK(r.status == 0);
  CHECK(r.out.find("\n0 failures") != std::string::npos);
  CHECK(r.err.empty());
  // The tree as the agent lists it (bus 100 is the program's bus 201), lsusb -t style.
  WireClient wire_client(agent.port());
  wire_client.handshake();
  const auto devices = wire_client.list();
  REQUIRE(devices.size() == 3);
  std::string expected;
  for (const auto& d : devices) {
    const bool hub = d.parent_id == 0;
    std::string ports = "-";
    if (!d.port_numbers.empty()) ports = std::to_string(d.port_numbers[0]);
    char line[128];
    std::snprintf(line, sizeof line, "tree %sBus 201 Port %s Dev %03u ID %02x%02x:%02x%02x%s\n",
                  hub ? "" : "    ", ports.c_str(), d.device_address, d.device_descriptor[9],
                  d.device_descriptor[8], d.device_descriptor[11], d.device_descriptor[10],
                  hub ? " hub" : "");
    expected += line;
  }
  CHECK(expected ==
        "tree Bus 201 Port - Dev 001 ID 1d6b:0002 hub\n"
        "tree     Bus 201 Port 1 Dev 002 ID 1209:0001\n"
        "tree     Bus 201 Port 2 Dev 003 ID 1209:0002\n");
  std::string tree;
  std::istringstream lines(r.out);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("tree ", 0) == 0) tree += line + "\n";
  }
  CHECK(tree == expected);
}

TEST_CASE("USBNET_DEVICES selects devices, with wildcards") {
  AgentProcess agent({"--simulate", "loopback,mouse,audio"});
  auto listed = [&](const std::string& filter) {
    const RunResult r = run({Programs::example("list_devices")}, shim_env(agent, filter));
    std::set<std::string> ids;
    std::smatch m;
    for (auto it = r.out.cbegin();
         std::regex_search(it, r.out.cend(), m, std::regex(R"(ID (\w{4}:\w{4}))"));
         it = m.suffix().first) {
      ids.insert(m[1]);
    }
    return ids;
  };
  // A selected device brings the root hub it hangs from (1d6b:0002), so that
  // libusb_get_parent works; a pattern that names only the hub lists only the hub.
  CHECK(listed("1209:0002") == std::set<std::string>{"1d6b:0002", "1209:0002"});
  CHECK(listed("1209:*") ==
        std::set<std::string>{"1d6b:0002", "1209:0001", "1209:0002", "1209:0003"});
  CHECK(listed("*:0003,1209:0001") == std::set<std::string>{"1d6b:0002", "1209:0001", "1209:0003"});
  CHECK(listed("1d6b:*") == std::set<std::string>{"1d6b:0002"});
  CHECK(listed("dead:beef").empty());
  // Unset: everything the agent exports.
  auto env = shim_env(agent);
  env["USBNET_DEVICES"] = kUnset;
  const RunResult all = run({Programs::example("list_devices")}, env);
  CHECK(all.out.find("4 devices") != std::string::npos);
}

TEST_CASE("bad environment values give one clear line, and the program goes on") {
  AgentProcess agent;
  struct Case {
    std::string variable, value, message;
  };
  const std::vector<Case> cases = {
      {"USBNET_AGENT", "nowhere:port", "USBNET_AGENT: 'nowhere:port' is not HOST:PORT"},
      {"USBNET_DEVICES", "12345", "USBNET_DEVICES: '12345' is not a device"},
      {"USBNET_LOG", "loud", "USBNET_LOG='loud' is not one of"},
      {"USBNET_CONNECT_TIMEOUT_MS", "soon", "USBNET_CONNECT_TIMEOUT_MS='soon' is not a number"},
  };
  for (const Case& c : cases) {
    auto env = shim_env(agent);
    env[c.variable] = c.value;
    const RunResult r = run({Programs::example("list_devices")}, env);
    INFO(c.variable << "=" << c.value << "\n" << r.err);
    CHECK(r.status == 0);
    CHECK(r.err.find(c.message) != std::string::npos);
    CHECK(count(r.err, "\n") == 1);
  }
}

TEST_CASE("an unreachable agent is one warning line and local devices still work") {
  auto env = std::map<std::string, std::string>{{"LD_PRELOAD", Programs::preload()},
                                                {"USBNET_AGENT", "127.0.0.1:1"},
                                                {"USBNET_DEVICES", "*"},
                                                {"USBNET_CONNECT_TIMEOUT_MS", "500"}};
  const RunResult r = run({Programs::example("list_devices")}, env);
  const RunResult plain = run({Programs::example("list_devices")});
  CHECK(r.status == 0);
  CHECK(r.out == plain.out);
  CHECK(r.err.find("cannot reach the agent at 127.0.0.1:1") != std::string::npos);
  CHECK(count(r.err, "\n") == 1);
}

TEST_CASE("an agent killed during a transfer: the call returns NO_DEVICE, never hangs") {
  for (const char* timeout : {"5000", "0"}) {
    AgentProcess agent;
    Process program({Programs::test_program("wait_for_data"), timeout}, shim_env(agent));
    REQUIRE(program.wait_for_output("waiting", std::chrono::seconds(10)));
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    agent.process().kill(SIGKILL);
    REQUIRE(program.wait(std::chrono::seconds(10)));
    INFO(program.out() << program.err());
    CHECK(program.out().find("result LIBUSB_ERROR_NO_DEVICE transferred 0") != std::string::npos);
    CHECK(program.out().find("claim LIBUSB_ERROR_NO_DEVICE") != std::string::npos);
  }
}

// ThreadSanitizer cannot follow a child forked from a process with threads (it aborts in the
// child), so a TSan build leaves this one out; the plain and ASan builds run it.
#ifndef __SANITIZE_THREAD__
TEST_CASE("fork: the child connects afresh, the parent's connection is unharmed") {
  AgentProcess agent;
  const RunResult r = run({Programs::test_program("fork_check")}, shim_env(agent));
  INFO(r.out << r.err);
  CHECK(r.status == 0);
  CHECK(r.out.find("child: inherited context shows 0 remote devices, own context works") !=
        std::string::npos);
  CHECK(r.out.find("parent: 0 failed transfers, child exit 0") != std::string::npos);
}
#endif

TEST_CASE("two agents at once: devices from both") {
  AgentProcess first({"--simulate", "loopback"}), second({"--simulate", "mouse"});
  auto env = shim_env(first);
  env["USBNET_AGENT"] = first.endpoint() + "," + second.endpoint();
  const RunResult r = run({Programs::example("list_devices")}, env);
  CHECK(r.status == 0);
  CHECK(std::regex_search(r.out, std::regex(R"(Bus 201 Device 002: ID 1209:0001)")));
  CHECK(std::regex_search(r.out, std::regex(R"(Bus 202 Device 002: ID 1209:0002)")));
}

TEST_CASE("USBNET_TRACE records every remote transfer: trans_id, result and latency") {
  AgentProcess agent;
  const std::string path = "/tmp/usbnet-trace-" + std::to_string(::getpid()) + ".log";
  std::remove(path.c_str());
  auto env = shim_env(agent);
  env["USBNET_TRACE"] = path;
  const RunResult r = run({Programs::example("control_demo")}, env);
  INFO(r.out << r.err);
  CHECK(r.status == 0);
  std::ifstream in(path);
  std::string line;
  std::set<std::string> ids, statuses;
  int lines = 0;
  const std::regex format(
      R"(t=\d+\.\d{6} trans_id=(\d+) dev=2\d\d:\d{3} type=(CTRL|BULK|INT|ISO) ep=0x[0-9a-f]{2} )"
      R"(length=\d+ status=([A-Z_]+) actual=\d+ latency_us=\d+)");
  while (std::getline(in, line)) {
    INFO(line);
    std::smatch m;
    REQUIRE(std::regex_match(line, m, format));
    ids.insert(m[1]);
    statuses.insert(m[3]);
    ++lines;
  }
  std::remove(path.c_str());
  CHECK(lines >= 8);
  CHECK(ids.size() == static_cast<std::size_t>(lines));  // one line per transfer
  CHECK(statuses == std::set<std::string>{"COMPLETED", "STALL", "TIMED_OUT"});

  // A trace file that cannot be written is one line, and the program goes on.
  env["USBNET_TRACE"] = "/nonexistent-dir/trace.log";
  const RunResult unwritable = run({Programs::example("control_demo")}, env);
  CHECK(unwritable.status == 0);
  CHECK(unwritable.err.find("USBNET_TRACE: cannot open '/nonexistent-dir/trace.log'") !=
        std::string::npos);
  CHECK(count(unwritable.err, "\n") == 1);
}
