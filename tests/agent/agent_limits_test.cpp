// Everything a client can make the agent hold is bounded: a client that floods URBs and never
// reads its answers is throttled (the agent stops reading it) while another client keeps its
// service; connections are capped in total and per address; a connection that sends no HELLO
// is closed at the deadline and costs a few KiB until then.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <regex>
#include <thread>

#include "support/agent_process.h"
#include "support/shim_env.h"
#include "support/wire_client.h"
#include "urb_helpers.h"

using namespace usbnet;
using namespace usbnet::test;
using wire::UrbStatus;
using wire::UrbType;

namespace {

// Sends URB_SUBMITs built by `make` for `duration` without ever reading, as fast as the agent
// takes them (a frame the socket took in part is finished before the next); returns how many
// frames went out whole.
template <typename Make>
int flood(WireClient& c, std::chrono::milliseconds duration, Make make) {
  const auto end = std::chrono::steady_clock::now() + duration;
  int sent = 0;
  wire::Bytes frame;
  std::size_t at = 0;
  while (std::chrono::steady_clock::now() < end) {
    if (at == frame.size()) {
      wire::UrbSubmit u = make();
      u.trans_id = c.next_id();
      frame = wire::encode(u);
      at = 0;
    }
    at += c.send_some(wire::ByteView(frame).subspan(at), std::chrono::milliseconds(100));
    if (at == frame.size()) ++sent;
  }
  return sent;
}

// Waits (bounded) for `program`, sampling the agent's resident memory meanwhile: the peak.
std::size_t peak_rss_while(Process& agent, const std::function<bool()>& busy) {
  std::size_t peak = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (busy() && std::chrono::steady_clock::now() < deadline) {
    peak = std::max(peak, rss_kib(agent.pid()));
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return std::max(peak, rss_kib(agent.pid()));
}

}  // namespace

TEST_CASE("a client that floods large IN URBs and never reads is throttled, not fed") {
  // The documented bound for one client: its URB memory (16 MiB here, the source fills the
  // buffers), its send queue (8 MiB here, completions that share those buffers) and a few MiB
  // of bookkeeping and stream buffers.
  AgentProcess agent({"--simulate", "loopback,loopback3", "--max-urb-memory", "16777216",
                      "--max-send-queue", "8388608"});
  WireClient flooder(agent.port());
  flooder.handshake(60000);  // announces a long heartbeat: it is not dropped as silent
  const std::uint32_t device = device_with_product(flooder, loopback_device::kProductId);
  const std::uint32_t h = flooder.request(wire::Open{0, device}).value();
  REQUIRE(flooder.request(wire::ClaimInterface{0, h, 0}));
  const std::size_t before = rss_kib(agent.process().pid());

  std::atomic<bool> flooding{true};
  std::atomic<int> taken{0};
  std::thread attacker([&] {
    taken = flood(flooder, std::chrono::seconds(4),
                  [&] { return transfer(UrbType::Bulk, h, 0x82, wire::kMaxTransferLength, 0); });
    flooding = false;
  });
  // Another client's bulk loopback on the other device, meanwhile, through the shim.
  Process victim({Programs::example("bulk_loopback"), "1209:0004", "200"}, shim_env(agent));
  const std::size_t peak =
      peak_rss_while(agent.process(), [&] { return flooding.load() || victim.running(); });
  attacker.join();
  INFO(victim.err());
  CHECK(victim.wait(std::chrono::seconds(30)) == 0);
  INFO("RSS before " << before << " KiB, peak " << peak << " KiB; " << taken.load()
                     << " submissions sent");
  CHECK(peak < before + 40 * 1024);
  const std::string log = agent.process().err();
  CHECK(occurrences(log, "not reading the client's requests") >= 1);
  CHECK(occurrences(log, "not reading the client's requests") <= 2);  // rate-limited
  // Once the flooder goes, its interface is free for the next client.
  flooder.close();
  WireClient next(agent.port());
  next.handshake();
  CHECK(next.request(wire::ClaimInterface{0, next.request(wire::Open{0, device}).value(), 0}));
}

TEST_CASE("URBs past the client's limits are refused with ERROR and one log line") {
  AgentProcess agent(
      {"--simulate", "loopback,loopback3", "--max-urbs", "64", "--max-urb-memory", "1048576"});
  WireClient c(agent.port());
  c.handshake();
  const std::uint32_t device = device_with_product(c, loopback_device::kProductId);
  const std::uint32_t h = c.request(wire::Open{0, device}).value();
  REQUIRE(c.request(wire::ClaimInterface{0, h, 0}));
  // IN URBs on 0x81 wait for data that never comes: they stay unanswered.
  std::vector<std::uint32_t> waiting;
  for (int i = 0; i < 64; ++i) {
    waiting.push_back(send_urb(c, transfer(UrbType::Bulk, h, 0x81, 512, 0)));
  }
  for (int i = 0; i < 200; ++i) {
    auto over = run_urb(c, transfer(UrbType::Bulk, h, 0x81, 512, 0));
    REQUIRE(over);
    CHECK(over->status == UrbStatus::Error);
  }
  for (std::uint32_t id : waiting) c.send(wire::UrbCancel{id});
  for (std::uint32_t id : waiting) {
    auto done = wait_complete(c, id);
    REQUIRE(done);
    CHECK(done->status == UrbStatus::Cancelled);
  }
  // Memory: a 2 MiB URB does not fit in 1 MiB; a small one does again.
  auto big = run_urb(c, transfer(UrbType::Bulk, h, 0x82, 2u << 20));
  REQUIRE(big);
  CHECK(big->status == UrbStatus::Error);
  auto small = run_urb(c, transfer(UrbType::Bulk, h, 0x82, 4096));
  REQUIRE(small);
  CHECK(small->status == UrbStatus::Completed);
  const std::string log = agent.process().err();
  CHECK(occurrences(log, "URB refused") == 1);
  CHECK(log.find("--max-urbs 64") != std::string::npos);
}

TEST_CASE("a client that floods URBs that never complete costs bounded memory and log") {
  AgentProcess agent({"--simulate", "loopback,loopback3", "--max-send-queue", "4194304"});
  WireClient flooder(agent.port());
  flooder.handshake(60000);
  const std::uint32_t device = device_with_product(flooder, loopback_device::kProductId);
  const std::uint32_t h = flooder.request(wire::Open{0, device}).value();
  REQUIRE(flooder.request(wire::ClaimInterface{0, h, 0}));
  const std::size_t before = rss_kib(agent.process().pid());
  std::atomic<bool> flooding{true};
  std::thread attacker([&] {
    flood(flooder, std::chrono::seconds(4),
          [&] { return transfer(UrbType::Bulk, h, 0x81, wire::kMaxTransferLength, 0); });
    flooding = false;
  });
  const std::size_t peak = peak_rss_while(agent.process(), [&] { return flooding.load(); });
  attacker.join();
  INFO("RSS before " << before << " KiB, peak " << peak << " KiB");
  CHECK(peak < before + 48 * 1024);
  const std::string log = agent.process().err();
  CHECK(occurrences(log, "URB refused") <= 2);
  // Meanwhile a second client is answered at once.
  WireClient other(agent.port());
  other.handshake();
  CHECK(other.list().size() >= 2);
}

namespace {

// A TCP connection to the agent from a given loopback address; -1 if refused.
int connect_from(const char* source, std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in from{};
  from.sin_family = AF_INET;
  ::inet_pton(AF_INET, source, &from.sin_addr);
  sockaddr_in to{};
  to.sin_family = AF_INET;
  to.sin_port = htons(port);
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&from), sizeof from) != 0 ||
      ::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// True once the agent has closed `fd` (after whatever it sent), within `timeout`.
bool closed_by_peer(int fd, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(std::max<std::int64_t>(0, left.count()))) <= 0) {
      return false;
    }
    std::uint8_t buffer[4096];
    const ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
    if (n <= 0) return true;
  }
}

std::size_t raise_fd_limit(std::size_t wanted) {
  rlimit limit{};
  ::getrlimit(RLIMIT_NOFILE, &limit);
  limit.rlim_cur = std::min<rlim_t>(limit.rlim_max, wanted);
  ::setrlimit(RLIMIT_NOFILE, &limit);
  ::getrlimit(RLIMIT_NOFILE, &limit);
  return limit.rlim_cur;
}

}  // namespace

TEST_CASE("2000 idle connections: capped in total and per address, closed at the HELLO deadline") {
  const std::size_t fds = raise_fd_limit(4096);
  const int wanted = static_cast<int>(std::min<std::size_t>(2000, fds - 200));
  REQUIRE(wanted >= 1000);
  AgentProcess agent({"--simulate", "loopback", "--max-connections", "300",
                      "--max-connections-per-address", "100", "--hello-timeout", "2000"});
  const std::size_t before = rss_kib(agent.process().pid());
  std::vector<int> sockets;
  for (int i = 0; i < wanted; ++i) {
    const std::string source = "127.0.0." + std::to_string(1 + i % 20);
    const int fd = connect_from(source.c_str(), agent.port());
    REQUIRE(fd >= 0);
    sockets.push_back(fd);
  }
  // The agent answers those over the caps with an ERROR and closes them at once.
  int refused = 0;
  const auto settle = std::chrono::steady_clock::now() + std::chrono::milliseconds(1500);
  while (refused < wanted - 300 && std::chrono::steady_clock::now() < settle) {
    for (int& fd : sockets) {
      if (fd >= 0 && closed_by_peer(fd, std::chrono::milliseconds(0))) {
        ++refused;
        ::close(fd);
        fd = -1;
      }
    }
  }
  const std::size_t holding = rss_kib(agent.process().pid());
  INFO("RSS before " << before << " KiB, with 300 connections before HELLO " << holding << " KiB");
  CHECK(refused >= wanted - 300);
  CHECK(holding < before + 300 * 64);  // under 64 KiB each
  const std::string log = agent.process().err();
  CHECK(occurrences(log, "refused a connection from") <= 2);  // rate-limited
  // Past the deadline every one is closed.
  int closed = refused;
  for (int& fd : sockets) {
    if (fd < 0) continue;
    if (closed_by_peer(fd, std::chrono::seconds(10))) ++closed;
    ::close(fd);
    fd = -1;
  }
  CHECK(closed == wanted);
  // And the agent serves the next client as ever.
  WireClient after(agent.port());
  after.handshake();
  CHECK(!without_hubs(after.list()).empty());
}

TEST_CASE("a connection that sends heartbeats but no HELLO is closed at the deadline") {
  AgentProcess agent({"--simulate", "loopback", "--hello-timeout", "500"});
  WireClient idle(agent.port());
  const wire::Bytes heartbeat(wire::kFrameLengthSize, 0);
  const auto start = std::chrono::steady_clock::now();
  bool closed = false;
  std::optional<Received> told;
  while (!closed && std::chrono::steady_clock::now() - start < std::chrono::seconds(10)) {
    if (idle.send_some(heartbeat, std::chrono::milliseconds(100)) != heartbeat.size()) break;
    if (auto r = idle.receive(std::chrono::milliseconds(100))) told = std::move(r);
    closed = idle.wait_closed(std::chrono::milliseconds(0));
  }
  if (!closed) closed = idle.wait_closed(std::chrono::seconds(5));
  CHECK(closed);
  REQUIRE(told);
  REQUIRE(told->as<wire::Error>());
  CHECK(told->as<wire::Error>()->text.find("no HELLO within 500 ms") != std::string::npos);
}

TEST_CASE("a frame larger than a HELLO before the HELLO closes the connection") {
  AgentProcess agent({"--simulate", "loopback"});
  WireClient c(agent.port());
  // A length prefix of 1 MiB: a client that has not said HELLO may not make the agent wait for
  // (and hold) that much.
  c.send_raw(wire::Bytes{0x00, 0x00, 0x10, 0x00});
  auto answer = c.receive();
  REQUIRE(answer);
  REQUIRE(answer->as<wire::Error>());
  CHECK(answer->as<wire::Error>()->text == "protocol error: frame too large");
  CHECK(c.wait_closed());
  // After HELLO the protocol's 2 MiB cap applies: a 1 MiB OUT payload in one frame is fine.
  WireClient d(agent.port());
  d.handshake();
  const std::uint32_t h =
      d.request(wire::Open{0, device_with_product(d, loopback_device::kProductId)}).value();
  REQUIRE(d.request(wire::ClaimInterface{0, h, 0}));
  const wire::Bytes data = pattern(1u << 20);
  auto out = wait_complete(d, send_urb(d, transfer(UrbType::Bulk, h, 0x02, 1u << 20), data,
                                       /*piece=*/1u << 20));
  REQUIRE(out);
  CHECK(out->status == UrbStatus::Completed);
}
