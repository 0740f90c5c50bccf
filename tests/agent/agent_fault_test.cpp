// A client process killed at every phase of the protocol: the agent releases what it held at
// once (the next client claims the interface within a second) and keeps nothing of it (its
// sessions end, no descriptor stays open, memory returns to where it was). And a link that
// stalls or is cut under a client (through the pausing proxy): the agent drops it and serves
// the next.
#include <dirent.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <thread>

#include "support/agent_process.h"
#include "support/link_proxy.h"
#include "support/wire_client.h"
#include "urb_helpers.h"

using namespace usbnet;
using namespace usbnet::test;
using wire::UrbStatus;
using wire::UrbType;

namespace {

enum class Phase { Connected, Hello, Opened, Claimed, UrbsOnDevice, PayloadHalfSent };

const char* name_of(Phase p) {
  switch (p) {
    case Phase::Connected:
      return "before HELLO";
    case Phase::Hello:
      return "after HELLO";
    case Phase::Opened:
      return "after OPEN";
    case Phase::Claimed:
      return "after CLAIM";
    case Phase::UrbsOnDevice:
      return "with URBs on the device";
    case Phase::PayloadHalfSent:
      return "in the middle of an OUT payload";
  }
  return "?";
}

// The child: goes as far as `phase`, says so on `ready`, and waits to be killed.
[[noreturn]] void client_until(std::uint16_t port, Phase phase, int ready) {
  try {
    WireClient c(port);
    if (phase != Phase::Connected) {
      c.handshake();
      const std::uint32_t device = device_with_product(c, loopback_device::kProductId);
      if (phase != Phase::Hello) {
        const std::uint32_t h = c.request(wire::Open{0, device}).value();
        if (phase != Phase::Opened) {
          if (!c.request(wire::ClaimInterface{0, h, 0})) ::_exit(3);
          if (phase == Phase::UrbsOnDevice) {
            // Reads that wait for data, a loopback message and source reads in flight.
            for (int i = 0; i < 8; ++i) send_urb(c, transfer(UrbType::Bulk, h, 0x81, 4096, 0));
            send_urb(c, transfer(UrbType::Bulk, h, 0x82, 1u << 20, 0));
            run_urb(c, transfer(UrbType::Bulk, h, 0x01, 100), pattern(100));
          } else if (phase == Phase::PayloadHalfSent) {
            // 4 MiB announced, 2 MiB of it sent in pieces.
            wire::UrbSubmit u = transfer(UrbType::Bulk, h, 0x02, 4u << 20);
            u.trans_id = c.next_id();
            const wire::Bytes data = pattern(4u << 20);
            wire::PieceSplitter splitter(data, 64u << 10);
            u.payload = splitter.inline_part();
            c.send(u);
            for (int i = 0; i < 31; ++i) c.send(splitter.next_piece(u.trans_id));
          }
        }
      }
    }
    const char byte = 1;
    if (::write(ready, &byte, 1) != 1) ::_exit(4);
    for (;;) ::pause();
  } catch (...) {
    ::_exit(5);
  }
}

std::size_t open_descriptors(pid_t pid) {
  std::size_t n = 0;
  const std::string path = "/proc/" + std::to_string(pid) + "/fd";
  if (DIR* dir = ::opendir(path.c_str())) {
    while (const dirent* e = ::readdir(dir)) {
      if (e->d_name[0] != '.') ++n;
    }
    ::closedir(dir);
  }
  return n;
}

// Claims interface 0 of the loopback device on a fresh connection, retrying while it is busy;
// how long that took (the connection stays open in `c`).
std::chrono::milliseconds claim_when_free(WireClient& c, std::uint32_t& handle) {
  const auto start = std::chrono::steady_clock::now();
  c.handshake();
  handle = c.request(wire::Open{0, device_with_product(c, loopback_device::kProductId)}).value();
  while (!c.request(wire::ClaimInterface{0, handle, 0}) &&
         std::chrono::steady_clock::now() - start < std::chrono::seconds(10)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                               start);
}

}  // namespace

TEST_CASE("a client killed at any phase leaves nothing behind, and the next claims at once") {
  AgentProcess agent({"--simulate", "loopback"});
  const pid_t agent_pid = agent.process().pid();
  // Warm up (the first client allocates what every later one reuses), then the baseline.
  {
    WireClient warm(agent.port());
    std::uint32_t h = 0;
    claim_when_free(warm, h);
    REQUIRE(run_urb(warm, transfer(UrbType::Bulk, h, 0x82, 1u << 20)));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  const std::size_t fds_before = open_descriptors(agent_pid);
  const std::size_t rss_before = rss_kib(agent_pid);
  int connections = 1;

  for (Phase phase : {Phase::Connected, Phase::Hello, Phase::Opened, Phase::Claimed,
                      Phase::UrbsOnDevice, Phase::PayloadHalfSent}) {
    for (int round = 0; round < 3; ++round) {
      INFO("killed " << name_of(phase) << ", round " << round);
      int ready[2];
      REQUIRE(::pipe(ready) == 0);
      const pid_t child = ::fork();
      REQUIRE(child >= 0);
      if (child == 0) client_until(agent.port(), phase, ready[1]);
      ::close(ready[1]);
      char byte = 0;
      const ssize_t got = ::read(ready[0], &byte, 1);
      ::close(ready[0]);
      ::kill(child, SIGKILL);
      int status = 0;
      ::waitpid(child, &status, 0);
      REQUIRE(got == 1);
      ++connections;

      WireClient next(agent.port());
      std::uint32_t h = 0;
      const auto took = claim_when_free(next, h);
      ++connections;
      CHECK(took < std::chrono::seconds(1));
      // The device serves the new owner from a clean state: nothing of the dead client's
      // stream is waiting (a loopback message) or running.
      auto echo = run_urb(next, transfer(UrbType::Bulk, h, 0x81, 4096, 200));
      REQUIRE(echo);
      CHECK(echo->status == UrbStatus::TimedOut);  // nothing queued for it
      REQUIRE(run_urb(next, transfer(UrbType::Bulk, h, 0x01, 5), pattern(5)));
      auto mine = run_urb(next, transfer(UrbType::Bulk, h, 0x81, 4096));
      REQUIRE(mine);
      CHECK(mine->data == pattern(5));
    }
  }
  // Every session ended, and the agent holds what it held before.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (occurrences(agent.process().err(), "session ended") <
             static_cast<std::size_t>(connections) &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  CHECK(occurrences(agent.process().err(), "session ended") ==
        static_cast<std::size_t>(connections));
  CHECK(open_descriptors(agent_pid) == fds_before);
  const std::size_t rss_after = rss_kib(agent_pid);
  INFO("RSS before " << rss_before << " KiB, after " << rss_after << " KiB");
  CHECK(rss_after < rss_before + 8 * 1024);
}

TEST_CASE("a link that stalls past the dead-peer time is dropped and its claim released") {
  AgentProcess agent({"--simulate", "loopback", "--dead-after", "1000"});
  LinkProxy proxy(agent.port());
  WireClient stalled(proxy.port());
  stalled.handshake(300);  // it says it sends a frame every 300 ms: dead after 900 ms of silence
  const std::uint32_t h =
      stalled.request(wire::Open{0, device_with_product(stalled, loopback_device::kProductId)})
          .value();
  REQUIRE(stalled.request(wire::ClaimInterface{0, h, 0}));
  const std::uint32_t waiting = send_urb(stalled, transfer(UrbType::Bulk, h, 0x81, 512, 0));
  proxy.pause();
  WireClient next(agent.port());
  std::uint32_t h2 = 0;
  const auto took = claim_when_free(next, h2);
  CHECK(took < std::chrono::seconds(5));
  CHECK(agent.process().wait_for_output("nothing received for", std::chrono::seconds(5)));
  // Resumed too late: the agent has closed its side, the stalled client learns it.
  proxy.resume();
  CHECK(stalled.wait_closed(std::chrono::seconds(5)));
  CHECK_FALSE(stalled.receive_id(waiting, std::chrono::milliseconds(100)));
}

TEST_CASE("a cut link releases the client's claim and cancels its URBs") {
  AgentProcess agent({"--simulate", "loopback"});
  LinkProxy proxy(agent.port());
  WireClient cut(proxy.port());
  cut.handshake();
  const std::uint32_t h =
      cut.request(wire::Open{0, device_with_product(cut, loopback_device::kProductId)}).value();
  REQUIRE(cut.request(wire::ClaimInterface{0, h, 0}));
  for (int i = 0; i < 16; ++i) send_urb(cut, transfer(UrbType::Bulk, h, 0x81, 512, 0));
  REQUIRE(run_urb(cut, transfer(UrbType::Bulk, h, 0x82, 512)));
  proxy.cut();
  CHECK(cut.wait_closed());
  WireClient next(agent.port());
  std::uint32_t h2 = 0;
  CHECK(claim_when_free(next, h2) < std::chrono::seconds(1));
  // The dead client's 16 reads were cancelled, not left to swallow the new owner's data.
  REQUIRE(run_urb(next, transfer(UrbType::Bulk, h2, 0x01, 7), pattern(7)));
  auto mine = run_urb(next, transfer(UrbType::Bulk, h2, 0x81, 512));
  REQUIRE(mine);
  CHECK(mine->data == pattern(7));
}
