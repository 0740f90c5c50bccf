// What libusbnet.so tells a program when the link to the agent stalls (a pausing proxy between
// them): a transfer whose outcome the shim cannot know is never reported as not done.
#include <catch2/catch.hpp>
#include <thread>

#include "support/agent_process.h"
#include "support/link_proxy.h"
#include "support/shim_env.h"

using namespace usbnet::test;

TEST_CASE("a link stalled past a transfer's timeout and grace loses the handle, shifting nothing") {
  AgentProcess agent({"--simulate", "loopback"});
  LinkProxy proxy(agent.port());
  auto env = shim_env(agent);
  env["USBNET_AGENT"] = proxy.endpoint();
  env["USBNET_TIMEOUT_GRACE_MS"] = "1000";
  // Echoes with a 500 ms timeout; the link stalls for 4 s (well short of the dead-peer time), so
  // every transfer in flight then reaches the device late, after its timeout and its grace.
  Process program({Programs::test_program("echo_stream"), "12", "500"}, env);
  REQUIRE(program.wait_for_output("streaming", std::chrono::seconds(20)));
  proxy.pause();
  std::this_thread::sleep_for(std::chrono::seconds(4));
  proxy.resume();
  const auto status = program.wait(std::chrono::seconds(30));
  const std::string out = program.out();
  INFO(out << program.err());
  REQUIRE(status == 0);
  // The transfer the stall caught ended as lost, not as a TIMED_OUT that moved nothing (the
  // device did it once the link came back), and the handle failed from then on...
  CHECK(out.find("LIBUSB_ERROR_NO_DEVICE") != std::string::npos);
  CHECK(out.find("LIBUSB_ERROR_TIMEOUT after 0 bytes") == std::string::npos);
  CHECK(out.find("after the loss: LIBUSB_ERROR_NO_DEVICE") != std::string::npos);
  // ...so that no echo was ever taken for another message's.
  CHECK(out.find("wrong echo") == std::string::npos);
  CHECK(out.find(" wrong 0 ") != std::string::npos);
  CHECK(program.err().find("what the device did is unknown") != std::string::npos);
}
