// usbnet: the command-line client. `usbnet list` prints what an agent exports, lsusb style (the
// counterpart of `usbip list -r`); `usbnet run PROGRAM` runs a program with the shim preloaded;
// `usbnet key` prints this client's key line, for an agent's authorized_clients.
#include <CLI/CLI.hpp>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include "cli/environment.h"
#include "cli/pair_command.h"
#include "cli/run_command.h"
#include "client/agent_client.h"
#include "client/client_security.h"
#include "common/log.h"
#include "common/topology.h"
#include "transport/endpoint.h"
#include "usbnet/protocol.h"

using namespace usbnet;

namespace {

int fail(const std::string& message) {
  std::fprintf(stderr, "usbnet: %s\n", message.c_str());
  return 2;
}

// A string descriptor as UTF-8 (non-ASCII code points encoded properly; surrogates as '?').
std::string string_of(const wire::DeviceInfo& d, std::uint8_t index) {
  if (index == 0) return {};
  for (const auto& s : d.strings) {
    if (s.index != index || s.descriptor.size() < 2) continue;
    std::string out;
    for (std::size_t i = 2; i + 1 < s.descriptor.size() && i < s.descriptor[0]; i += 2) {
      const unsigned unit = s.descriptor[i] | (s.descriptor[i + 1] << 8);
      if (unit < 0x80) {
        out += static_cast<char>(unit);
      } else if (unit < 0x800) {
        out += static_cast<char>(0xc0 | (unit >> 6));
        out += static_cast<char>(0x80 | (unit & 0x3f));
      } else if (unit >= 0xd800 && unit < 0xe000) {
        out += '?';
      } else {
        out += static_cast<char>(0xe0 | (unit >> 12));
        out += static_cast<char>(0x80 | ((unit >> 6) & 0x3f));
        out += static_cast<char>(0x80 | (unit & 0x3f));
      }
    }
    return out;
  }
  return {};
}

const char* speed_name(std::uint8_t speed) {
  switch (speed) {
    case 1:
      return "1.5M";
    case 2:
      return "12M";
    case 3:
      return "480M";
    case 4:
      return "5000M";
    case 5:
      return "10000M";
  }
  return "unknown speed";
}

class Quiet : public client::ClientListener {
  void on_connected(const std::vector<wire::DeviceInfo>&, int) override {}
  void on_device_arrived(const wire::DeviceInfo&) override {}
  void on_device_left(std::uint32_t) override {}
  void on_disconnected(const std::string&) override {}
};

// The client's key and trust files (client_security.h); --insecure beats USBNET_INSECURE.
std::shared_ptr<client::ClientTrust> client_trust(bool insecure) {
  const char* env = std::getenv("USBNET_INSECURE");
  const bool from_env = env && (std::string_view(env) == "1" || std::string_view(env) == "yes" ||
                                std::string_view(env) == "true" || std::string_view(env) == "on");
  return std::make_shared<client::ClientTrust>(client::client_dir_from_environment(),
                                               insecure || from_env);
}

// usbnet key: this client's public key line, for the agent's authorized_clients.
int key() {
  auto trust = client_trust(false);
  auto line = trust->key_line();
  if (!line) return fail(line.error());
  std::printf("%s\n", line->to_string().c_str());
  std::fprintf(stderr,
               "usbnet: this client's key %s (%s); to let it in, append the line above to the "
               "agent's authorized_clients (in its state directory)\n",
               line->key.fingerprint().c_str(), trust->files().key().c_str());
  return 0;
}

int list(const std::string& agent_text, unsigned timeout_ms, bool insecure) {
  auto agent = transport::parse_endpoint(agent_text, wire::kDefaultPort);
  if (!agent) return fail("--agent: " + agent.error());
  client::ClientOptions options;
  options.agent = *agent;
  options.name = "usbnet list";
  options.connect_timeout = std::chrono::milliseconds(timeout_ms);
  options.reconnect = false;
  options.security = client::ClientTrust::policy(client_trust(insecure));
  Quiet quiet;
  client::AgentClient client(options, &quiet);
  if (auto error = client.ensure_connected()) {
    std::fprintf(stderr, "usbnet: cannot list %s: %s\n", agent->to_string().c_str(),
                 error->c_str());
    return 1;
  }
  const auto devices = client.devices();
  if (devices.empty()) std::printf("%s exports no device\n", agent->to_string().c_str());
  for (const wire::DeviceInfo& d : devices) {
    const auto& desc = d.device_descriptor;
    std::string port_path;
    for (std::uint8_t p : d.port_numbers) {
      port_path += (port_path.empty() ? "" : ".") + std::to_string(p);
    }
    std::string names = string_of(d, desc[14]);
    const std::string product = string_of(d, desc[15]);
    if (!product.empty()) names += (names.empty() ? "" : " ") + product;
    std::printf("Bus %03u Device %03u: ID %02x%02x:%02x%02x %s\n", d.bus_number, d.device_address,
                desc[9], desc[8], desc[11], desc[10], names.c_str());
    const std::string serial = string_of(d, desc[16]);
    // Where it hangs: a root hub tops its bus, anything else names the device it hangs from.
    std::string place = d.parent_id != 0 ? fmt::format(", parent {}", d.parent_id) : "";
    if (topology::is_hub(d)) place += topology::is_root(d) ? ", root hub" : ", hub";
    std::printf("    device %u, port %s, %s%s%s%s\n", d.device_id,
                port_path.empty() ? "-" : port_path.c_str(), speed_name(d.speed), place.c_str(),
                serial.empty() ? "" : ", serial ", serial.c_str());
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"usbnet: use USB devices plugged into another machine"};
  app.set_version_flag("--version", std::string("usbnet ") + USBNET_VERSION);
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "Print the help of every subcommand and exit");
  std::string agent = "127.0.0.1:" + std::to_string(wire::kDefaultPort);
  unsigned timeout_ms = 3000;
  std::string log_level = "warn";
  auto* list_command = app.add_subcommand("list", "List the devices an agent exports");
  list_command->add_option("--agent", agent, "The agent, as HOST:PORT")->capture_default_str();
  list_command->add_option("--timeout", timeout_ms, "Milliseconds to wait for the agent")
      ->capture_default_str()
      ->check(CLI::Range(10u, 600000u));
  auto* key_command = app.add_subcommand(
      "key",
      "Print this client's public key line (creating the key on first use), for the agent's "
      "authorized_clients");
  cli::PairRequest pair_request;
  auto* pair_command = app.add_subcommand(
      "pair",
      "Pair with an agent. With a code from `usbnet-agent pair` (--code): in one step, the agent "
      "lets this client in and its key is pinned in known_agents. Without: pin the agent's key "
      "after showing its fingerprint to compare, and print this client's key line for the "
      "agent's authorized_clients");
  pair_command->add_option("agent", pair_request.agent, "The agent, as HOST:PORT")->required();
  pair_command->add_flag("--yes", pair_request.yes,
                         "Pin without asking (once the fingerprint is compared)");
  pair_command->add_option(
      "--code", pair_request.code,
      "A one-time pairing code from `usbnet-agent pair` on the agent's machine: pairs in one "
      "step (the agent lets this client in, and its key is pinned) once each side has proved "
      "that it knows the code; asked for on a terminal when neither --code nor --yes is given");
  pair_command->add_flag("--replace", pair_request.replace,
                         "Replace the key pinned for this agent (after a legitimate change)");
  pair_command
      ->add_option("--timeout", pair_request.timeout_ms, "Milliseconds to wait for the agent")
      ->capture_default_str()
      ->check(CLI::Range(10u, 600000u));
  auto* env_command = app.add_subcommand(
      "env", "Describe the environment variables that configure the shim, libusbnet.so");
  env_command->footer(cli::shim_environment_help());
  cli::RunRequest run_request;
  auto* run_command = app.add_subcommand(
      "run",
      "Run PROGRAM [ARGS...] with libusbnet.so preloaded: usbnet run [--agent HOST:PORT[,...]] "
      "[--devices VID:PID[,...]] [--] PROGRAM [ARGS...]");
  run_command->prefix_command();  // everything from PROGRAM on is the program's
  run_command->add_option("--agent", run_request.agent,
                          "The agents, HOST:PORT[,...] (sets USBNET_AGENT; default: the "
                          "environment's, else 127.0.0.1:3241)");
  run_command->add_option("--devices", run_request.devices,
                          "The devices to use remotely, VID:PID[,...] with * wildcards (sets "
                          "USBNET_DEVICES; default: the environment's, else every exported one)");
  run_command->footer(cli::run_help_footer());
  app.add_option("--log-level", log_level, "error, warn, info, debug or trace")
      ->capture_default_str();
  bool insecure = false;
  app.add_flag("--insecure", insecure,
               "Talk to the agent in plaintext, without TLS (as USBNET_INSECURE=1): for an agent "
               "that runs --insecure or does not speak TLS");
  // `usbnet run [OPTIONS] -- PROGRAM ...`: CLI11 would take what follows "--" as positionals
  // of `run`, so the command is split off first.
  std::vector<std::string> after_separator;
  const int parsed_argc = cli::split_run_command(argc, argv, after_separator);
  try {
    app.parse(parsed_argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    return fail(std::string(e.what()) + " (see --help)");
  }
  log::set_prefix("usbnet");
  const auto level = log::parse_level(log_level);
  if (!level) return fail("--log-level: '" + log_level + "' is not a log level");
  log::set_level(*level);
  if (list_command->parsed()) return list(agent, timeout_ms, insecure);
  if (key_command->parsed()) return key();
  if (pair_command->parsed()) return cli::pair(pair_request);
  if (env_command->parsed()) std::fputs(cli::shim_environment_help().c_str(), stdout);
  if (run_command->parsed()) {
    run_request.command = run_command->remaining();
    if (parsed_argc != argc) {
      run_request.command.insert(run_request.command.end(), after_separator.begin(),
                                 after_separator.end());
    } else if (!run_request.command.empty() && run_request.command.front().starts_with("-")) {
      std::fprintf(stderr, "usbnet run: unknown option %s (see usbnet run --help)\n",
                   run_request.command.front().c_str());
      return 2;
    }
    return cli::run_program(run_request);
  }
  return 0;
}
