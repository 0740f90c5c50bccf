// A test that plays the agent: it listens on a free loopback port and hands each connection
// from the shim to the test, which answers (or misbehaves) message by message.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "wire_client.h"

namespace usbnet::test {

class FakeAgent {
 public:
  FakeAgent();
  ~FakeAgent();
  FakeAgent(const FakeAgent&) = delete;
  FakeAgent& operator=(const FakeAgent&) = delete;

  std::string endpoint() const { return "127.0.0.1:" + std::to_string(port_); }
  // The next connection, or nullptr when none came within `timeout`.
  std::unique_ptr<WireClient> accept(std::chrono::milliseconds timeout = std::chrono::seconds(10));

 private:
  int listener_ = -1;
  std::uint16_t port_ = 0;
};

// Answers the shim's HELLO as an agent would (ISO and HOTPLUG, heartbeats every
// `heartbeat_ms`); false if no HELLO came.
bool answer_hello(WireClient& peer, std::uint32_t heartbeat_ms = 5000);

}  // namespace usbnet::test
