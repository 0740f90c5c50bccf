// The shim's configuration, from the environment:
//
//   USBNET_AGENT          HOST:PORT of an agent; several separated by commas
//   USBNET_DEVICES        VID:PID pairs to use remotely ("1209:0001,1209:*"); unset: every
//                         device the agents export; empty: none (the shim changes nothing)
//   USBNET_LOG            error, warn (default), info, debug, trace, off
//   USBNET_TRACE          a file that receives one line per remote transfer
//   USBNET_CONNECT_TIMEOUT_MS, USBNET_HEARTBEAT_MS, USBNET_TIMEOUT_GRACE_MS,
//   USBNET_PIECE_SIZE     tuning (see docs/USAGE.md)
//   USBNET_INSECURE       1: plaintext to every agent, without TLS (client_security.h)
//   USBNET_CONFIG_DIR     the client's key and known_agents (default ~/.config/usbnet)
//
// A bad value is reported in one line on stderr and ignored; the program goes on.
#pragma once

#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "common/device_filter.h"
#include "transport/endpoint.h"

namespace usbnet::interpose {

struct Config {
  std::vector<transport::Endpoint> agents;
  DeviceFilter devices = DeviceFilter::none();
  std::string trace_file;
  std::chrono::milliseconds connect_timeout{3000};
  std::chrono::milliseconds heartbeat{5000};
  std::chrono::milliseconds timeout_grace{1000};
  std::uint32_t piece_size = 0;  // 0: the protocol's default
  bool insecure = false;
  std::filesystem::path config_dir;

  bool remote_enabled() const { return !agents.empty() && !devices.empty(); }
};

// Reads the environment once (later calls return the same), setting the log level as a side
// effect. Thread-safe.
const Config& config();

// A yes/no variable: unset, empty, 0, no, false, off; 1, yes, true, on; nullopt: neither.
std::optional<bool> parse_switch(const char* text);

// Parses a configuration from explicit values (for tests); `errors` receives one line per bad
// value.
Config parse_config(const char* agent, const char* devices, const char* log_level,
                    const char* trace, const char* connect_timeout, const char* heartbeat,
                    const char* grace, const char* piece_size, std::vector<std::string>& errors);

}  // namespace usbnet::interpose
