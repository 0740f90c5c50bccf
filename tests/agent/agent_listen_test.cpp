// Where the agent listens and what it says about it: ":PORT" and "[::]:PORT" take IPv6 and IPv4
// clients, listening beyond loopback without authentication (--insecure) is warned about at
// start, a HELLO with an authentication method the agent does not check is refused, and
// protocol faults are warnings (rate-limited), so that `--log-level warn` records an attack.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <memory>
#include <thread>

#include "support/agent_process.h"
#include "support/wire_client.h"
#include "urb_helpers.h"

using namespace usbnet;
using namespace usbnet::test;

namespace {

constexpr const char* kOpenWarning = "reachable beyond this machine without authentication";

void expect_served(std::uint16_t port, const char* host) {
  INFO("client from " << host);
  WireClient c(port, host);
  c.handshake();
  CHECK(!without_hubs(c.list()).empty());
}

// A port that was free a moment ago (for an agent whose log level hides the port it prints).
std::uint16_t free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof addr;
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &length);
  ::close(fd);
  return ntohs(addr.sin_port);
}

}  // namespace

// Plaintext clients beyond loopback: --insecure, warned about.
TEST_CASE(":PORT listens on IPv6 and IPv4, and warns that anyone may connect") {
  AgentProcess agent({"--simulate", "loopback", "--insecure"}, ":0");
  expect_served(agent.port(), "127.0.0.1");
  expect_served(agent.port(), "::1");
  CHECK(agent.process().err().find(kOpenWarning) != std::string::npos);
}

TEST_CASE("[::]:PORT listens on IPv6 and IPv4 too") {
  AgentProcess agent({"--simulate", "loopback", "--insecure"}, "[::]:0");
  expect_served(agent.port(), "::1");
  expect_served(agent.port(), "127.0.0.1");
  CHECK(agent.process().err().find(kOpenWarning) != std::string::npos);
}

TEST_CASE("a loopback agent gives no such warning") {
  AgentProcess agent({"--simulate", "loopback"});
  expect_served(agent.port(), "127.0.0.1");
  CHECK(agent.process().err().find(kOpenWarning) == std::string::npos);
  AgentProcess v6({"--simulate", "loopback"}, "[::1]:0");
  expect_served(v6.port(), "::1");
  CHECK(v6.process().err().find(kOpenWarning) == std::string::npos);
}

TEST_CASE("a HELLO with an authentication method the agent does not check is refused") {
  AgentProcess agent({"--simulate", "loopback"});
  WireClient c(agent.port());
  c.send(wire::Hello{7, wire::kProtocolVersion, 0, 5000, wire::AuthMethod::Token,
                     wire::Bytes{0x13, 0x37, 0xca, 0xfe, 0x42}, "token client"});
  auto answer = c.receive();
  REQUIRE(answer);
  REQUIRE(answer->as<wire::Error>());
  CHECK(answer->as<wire::Error>()->id == 0);
  CHECK(answer->as<wire::Error>()->code == wire::error_code::kAccess);
  CHECK(answer->as<wire::Error>()->text.find("authentication method 1 is not supported") !=
        std::string::npos);
  CHECK(c.wait_closed());
  CHECK(
      agent.process().wait_for_output("which this agent does not check", std::chrono::seconds(5)));
  // Without a token the same agent serves.
  expect_served(agent.port(), "127.0.0.1");
}

TEST_CASE("protocol faults are warnings, one line per interval however many") {
  const std::uint16_t port = free_port();
  Process agent({Programs::agent(), "--listen", "127.0.0.1:" + std::to_string(port), "--no-usb",
                 "--simulate", "loopback", "--log-level", "warn"});
  std::unique_ptr<WireClient> probe;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!probe) {
    try {
      probe = std::make_unique<WireClient>(port);
    } catch (const std::runtime_error&) {
      REQUIRE(std::chrono::steady_clock::now() < deadline);
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  }
  probe->handshake();
  for (int i = 0; i < 20; ++i) {
    WireClient bad(port);
    bad.send_raw(wire::Bytes{12, 0, 0, 0, 'N', 'O', 'T', 'U', 'S', 'B', 0, 0, 0, 0, 0, 0});
    CHECK(bad.wait_closed());
  }
  REQUIRE(agent.wait_for_output("bad magic", std::chrono::seconds(5)));
  const std::string log = agent.err();
  CHECK(log.find("warn:") != std::string::npos);
  CHECK(occurrences(log, "bad magic") == 1);
}
