#include "cli/environment.h"

#include <fmt/format.h>

#include <utility>

namespace usbnet::cli {

namespace {

// name, meaning
constexpr std::pair<const char*, const char*> kVariables[] = {
    {"USBNET_AGENT",
     "HOST:PORT of an agent (default port 3241; IPv6 as [::1]:3241); several separated by "
     "commas"},
    {"USBNET_DEVICES",
     "VID:PID pairs to use remotely, in hex: 0483:df11, 1209:*, * (several separated by "
     "commas); the hubs a selected device hangs from come with it. Unset: every device the "
     "agents export. Empty: none (the shim then changes nothing)"},
    {"USBNET_LOG", "error, warn (default), info, debug, trace or off, on stderr"},
    {"USBNET_TRACE",
     "a file that receives one line per remote transfer: time, trans_id, device, type, "
     "endpoint, length, status, actual length, latency"},
    {"USBNET_PCAP",
     "a file that receives every remote URB's submission and completion as a Linux usbmon "
     "capture (pcap, for Wireshark); an earlier capture there is continued"},
    {"USBNET_PCAP_MAX_BYTES",
     "the USBNET_PCAP file's limit: capturing stops, with one warning, before the file grows "
     "past it (1073741824)"},
    {"USBNET_CONNECT_TIMEOUT_MS", "how long the first connection attempt may take (3000)"},
    {"USBNET_HEARTBEAT_MS",
     "heartbeat interval (5000); the agent is considered lost after three without a frame"},
    {"USBNET_TIMEOUT_GRACE_MS",
     "how long past its own timeout a transfer waits for the agent's true outcome; after it "
     "the transfer's handle is lost and its transfers end with NO_DEVICE (1000)"},
    {"USBNET_PIECE_SIZE", "largest payload piece per frame, 512 to 1048576 (65536)"},
    {"USBNET_INSECURE",
     "1: talk to every agent in plaintext, without TLS (for an agent that runs --insecure or "
     "does not speak TLS). Otherwise an agent pinned in known_agents is reached over TLS 1.3 "
     "and must present the pinned key, an unpinned one on loopback in plaintext, and an "
     "unpinned one elsewhere is refused"},
    {"USBNET_CONFIG_DIR",
     "the directory of this client's key (client_key, made on first use) and of known_agents, "
     "the agents' pinned keys (default: $XDG_CONFIG_HOME/usbnet, else ~/.config/usbnet)"},
};

}  // namespace

std::string shim_environment_help() {
  std::string out =
      "The shim libusbnet.so, loaded into a libusb-1.0 program (by usbnet run, or with\n"
      "LD_PRELOAD), reads its settings from the environment. A bad value is reported in one\n"
      "line on stderr and ignored; an unreachable agent gives one warning line. Otherwise the\n"
      "shim prints nothing, and the program always keeps its local devices.\n\n"
      "Environment:\n";
  for (const auto& [name, meaning] : kVariables) out += fmt::format("  {}  {}\n", name, meaning);
  return out;
}

}  // namespace usbnet::cli
