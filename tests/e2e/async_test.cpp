// libusbnet.so's asynchronous API end to end: plain libusb programs with transfers in flight,
// their own event loops, hotplug callbacks and isochronous streams, under LD_PRELOAD against a
// real usbnet-agent serving simulated devices.
#include <catch2/catch.hpp>
#include <csignal>
#include <regex>
#include <thread>

#include "support/agent_process.h"
#include "support/shim_env.h"

using namespace usbnet::test;

TEST_CASE("async streaming at queue depth 32 keeps every byte in order, IN and OUT") {
  AgentProcess agent({"--simulate", "loopback,loopback3"});
  for (const char* device : {"1209:0001", "1209:0004"}) {
    for (const char* direction : {"in", "out"}) {
      const RunResult r =
          run({Programs::example("async_stream"), direction, "32", "65536", "64", device},
              shim_env(agent));
      INFO(device << " " << direction << "\n" << r.out << r.err);
      CHECK(r.status == 0);
      CHECK(r.out.find(std::string(direction) +
                       ": 67108864 bytes in 32-deep 65536-byte transfers") != std::string::npos);
      CHECK(r.out.find("every byte checked") != std::string::npos);
    }
  }
}

TEST_CASE("the asynchronous API keeps libusb's semantics on remote devices") {
  // Cancellation in flight, FREE_TRANSFER | FREE_BUFFER, TIMED_OUT, STALL, OVERFLOW,
  // ADD_ZERO_PACKET, resubmission from the callback, isochronous OUT.
  AgentProcess agent({"--simulate", "loopback,audio"});
  const RunResult r = run({Programs::test_program("async_semantics")}, shim_env(agent));
  INFO(r.out << r.err);
  CHECK(r.status == 0);
  CHECK(r.out.find("async semantics: 0 failures") != std::string::npos);
  CHECK(r.out.find("FAIL") == std::string::npos);
}

TEST_CASE("the event API: locks, waiters, timeouts, interrupting a handler") {
  AgentProcess agent;
  const RunResult r = run({Programs::test_program("event_api")}, shim_env(agent));
  INFO(r.out << r.err);
  CHECK(r.status == 0);
  CHECK(r.out.find("event api: 0 failures") != std::string::npos);
}

TEST_CASE(
    "a program that polls libusb's descriptors in its own loop wakes for remote "
    "completions") {
  AgentProcess agent;
  const RunResult r = run({Programs::test_program("own_poll_loop")}, shim_env(agent));
  INFO(r.out << r.err);
  CHECK(r.status == 0);
  CHECK(r.out.find("own poll loop: 5 callbacks, 0 failures") != std::string::npos);
}

TEST_CASE(
    "a program's own poll loop gets libusb's own events handled while remote completions keep "
    "coming") {
  // Each round of its loop finds remote completions waiting; the round must serve libusb's
  // event descriptor too (on a real machine: the local devices' completions and timeouts).
  AgentProcess agent;
  const RunResult r = run({Programs::test_program("busy_poll_loop"), "100", "60"}, shim_env(agent));
  INFO(r.out << r.err);
  CHECK(r.status == 0);
  CHECK(r.out.find("ok   100 of 100 deregistrations handled in time") != std::string::npos);
  CHECK(r.out.find("left libusb's event descriptor ready in 0 rounds") != std::string::npos);
  CHECK(r.out.find("busy poll loop: 0 failures") != std::string::npos);
}

TEST_CASE("isochronous IN packets arrive with their own lengths, statuses and bytes") {
  AgentProcess agent({"--simulate", "audio"});
  const RunResult r = run({Programs::example("iso_capture"), "20", "32", "3"}, shim_env(agent));
  INFO(r.out << r.err);
  CHECK(r.status == 0);
  // 640 packets: every 64th is lost on the (simulated) bus, each of the others checked.
  CHECK(r.out.find("iso: 640 packets, 10 lost on the bus as expected, 0 wrong") !=
        std::string::npos);
}

TEST_CASE("a small transfer never waits behind a 16 MiB bulk transfer") {
  // The control and interrupt transfers are submitted after the big one on the same
  // connection; they are answered at once by the device, so they complete first unless they
  // were queued behind the whole payload.
  AgentProcess agent;
  for (const char* piece : {"65536", "4096"}) {
    auto env = shim_env(agent);
    env["USBNET_PIECE_SIZE"] = piece;
    const RunResult r = run({Programs::test_program("small_behind_big")}, env);
    INFO("piece " << piece << "\n" << r.out << r.err);
    CHECK(r.status == 0);
    CHECK(std::regex_search(r.out,
                            std::regex("finished: (control interrupt|interrupt control) bulk")));
  }
}

TEST_CASE("hotplug: ENUMERATE, filters, a device that leaves and comes back") {
  AgentProcess agent;
  const RunResult r = run({Programs::test_program("hotplug_events")}, shim_env(agent));
  INFO(r.out << r.err);
  CHECK(r.status == 0);
  CHECK(r.out.find("hotplug: 0 failures") != std::string::npos);
}

TEST_CASE("hotplug: a lost agent's devices leave, and arrive again when it is back") {
  auto agent = std::make_unique<AgentProcess>();
  const std::string listen = agent->endpoint();
  // The two devices and their root hub: 3 arrivals, 3 departures, 3 arrivals again.
  Process monitor({Programs::example("hotplug_monitor"), "60", "9"}, shim_env(*agent));
  REQUIRE(monitor.wait_for_output("watching", std::chrono::seconds(10)));
  CHECK(monitor.out().find("arrived 1d6b:0002") != std::string::npos);
  CHECK(monitor.out().find("arrived 1209:0001") != std::string::npos);
  CHECK(monitor.out().find("arrived 1209:0002") != std::string::npos);

  agent->process().kill(SIGKILL);
  REQUIRE(monitor.wait_for_output("left    1d6b:0002", std::chrono::seconds(10)));
  {
    // Devices leave before the hub they hang from, as the kernel removes them.
    const std::string out = monitor.out();
    const auto hub_left = out.find("left    1d6b:0002");
    CHECK(out.find("left    1209:0001") < hub_left);
    CHECK(out.find("left    1209:0002") < hub_left);
  }

  agent.reset();
  agent = std::make_unique<AgentProcess>(std::vector<std::string>{"--simulate", "loopback,mouse"},
                                         listen);
  REQUIRE(monitor.wait(std::chrono::seconds(20)));
  INFO(monitor.out() << monitor.err());
  CHECK(monitor.out().find("9 events") != std::string::npos);
  const std::string out = monitor.out();
  // Back: the hub before the devices below it.
  const auto back = out.find("arrived 1d6b:0002", out.find("left    1d6b:0002"));
  REQUIRE(back != std::string::npos);
  CHECK(out.find("arrived 1209:0001", back) != std::string::npos);
  CHECK(out.find("arrived 1209:0002", back) != std::string::npos);
}

TEST_CASE(
    "an agent killed with transfers in flight: every callback fires with NO_DEVICE, "
    "nothing leaks") {
  AgentProcess agent({"--simulate", "loopback"});
  std::vector<std::string> argv{Programs::test_program("agent_loss_async")};
#if USBNET_TEST_UNDER_VALGRIND
  // Sanitizer builds check leaks with LeakSanitizer instead.
  argv.insert(argv.begin(), {"valgrind", "-q", "--leak-check=full",
                             "--errors-for-leak-kinds=definite,indirect", "--error-exitcode=99"});
#endif
  Process program(argv, shim_env(agent));
  REQUIRE(program.wait_for_output("in flight", std::chrono::seconds(60)));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  agent.process().kill(SIGKILL);
  const auto status = program.wait(std::chrono::seconds(60));
  INFO(program.out() << program.err());
  REQUIRE(status);
  CHECK(*status == 0);
  // Half the transfers wait for data that never comes; the others may have completed before.
  CHECK(std::regex_search(program.out(), std::regex(R"(callbacks 16, no_device (8|9|1\d))")));
  CHECK(program.out().find("submit after loss: LIBUSB_ERROR_NO_DEVICE") != std::string::npos);
  CHECK(program.out().find("release after loss: LIBUSB_ERROR_NO_DEVICE") != std::string::npos);
}
