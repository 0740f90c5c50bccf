// The agent's flags for its bounds (limits.h), which are also keys of its --config file.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>

#include "agent/limits.h"

namespace usbnet::agent {

struct LimitFlags {
  ClientLimits client;
  ConnectionLimits connections;
  std::uint32_t hello_timeout_ms = 10000;

  ConnectionLimits connection_limits() const {
    ConnectionLimits limits = connections;
    limits.hello_timeout = std::chrono::milliseconds(hello_timeout_ms);
    return limits;
  }
};

void add_limit_options(CLI::App& app, LimitFlags& flags);

}  // namespace usbnet::agent
