// The environment of a plain libusb program run through the shim against a test agent.
#pragma once

#include <cstdlib>
#include <map>
#include <string>

#include "agent_process.h"

namespace usbnet::test {

// LD_PRELOAD, the agent, the devices to remote (by default every simulated one), and the log
// level: USBNET_TEST_SHIM_LOG (say "debug") makes the shim talk, for debugging a failure.
inline std::map<std::string, std::string> shim_env(const AgentProcess& agent,
                                                   const std::string& devices = "1209:*") {
  const char* log = std::getenv("USBNET_TEST_SHIM_LOG");
  return {{"LD_PRELOAD", Programs::preload()},
          {"USBNET_AGENT", agent.endpoint()},
          {"USBNET_DEVICES", devices},
          {"USBNET_LOG", log ? log : kUnset}};
}

}  // namespace usbnet::test
