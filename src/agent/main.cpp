// usbnet-agent: serves the USB devices of this machine (and simulated ones) to usbnet clients.
#include <systemd/sd-daemon.h>
#include <CLI/CLI.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include <csignal>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <vector>

#include "agent/agent_security.h"
#include "agent/backends.h"
#include "agent/config_file.h"
#include "agent/device_policy.h"
#include "agent/heap_policy.h"
#include "agent/limit_flags.h"
#include "agent/registry.h"
#include "agent/security_flags.h"
#include "agent/server.h"
#include "agent/udev_rules.h"
#include "agent/urb_capture.h"
#include "common/device_filter.h"
#include "common/log.h"
#include "security/key_store.h"
#include "security/pairing.h"
#include "security/trust_files.h"
#include "transport/endpoint.h"

namespace asio = boost::asio;
using namespace usbnet;

namespace {

struct Flags {
  std::string listen = "127.0.0.1:" + std::to_string(wire::kDefaultPort);
  std::string export_filter = "*";
  std::vector<std::string> simulate;
  bool no_usb = false;
  std::string log_level = "info";
  std::uint32_t heartbeat_ms = 5000;
  std::uint32_t dead_after_ms = 15000;
  std::uint32_t piece_size = wire::kDefaultPieceSize;
  std::uint32_t rescan_ms = 1000;
  std::string pcap;
  std::uint64_t pcap_max_bytes = 1ull << 30;
  std::string config;
  std::string write_udev_rules;
  agent::LimitFlags limits;
  agent::SecurityFlags security;
};

constexpr const char* kUdevGroup = "usbnet";

// --write-udev-rules: the rules for the export list, to FILE or '-' (stdout).
int write_udev_rules(const std::string& path, const DeviceFilter& exports) {
  const std::string rules = agent::udev_rules(exports, kUdevGroup);
  if (path == "-") {
    std::fputs(rules.c_str(), stdout);
    return 0;
  }
  // /run/udev/rules.d exists only once something has put rules there.
  std::error_code ec;
  const auto parent = std::filesystem::path(path).parent_path();
  if (!parent.empty()) std::filesystem::create_directories(parent, ec);
  std::ofstream out(path, std::ios::trunc);
  out << rules;
  out.close();
  if (!out) {
    std::fprintf(stderr, "usbnet-agent: --write-udev-rules: cannot write '%s'\n", path.c_str());
    return 1;
  }
  return 0;
}

int fail(const std::string& message) {
  std::fprintf(stderr, "usbnet-agent: %s\n", message.c_str());
  return 2;
}

// usbnet-agent authorize KEYLINE: lets a client in by adding its key line to authorized_clients.
int authorize(const std::string& state_dir, const std::string& text) {
  auto line = security::parse_key_line(text);
  if (!line) return fail("authorize: " + line.error());
  const security::AgentFiles files{state_dir};
  if (auto error = security::make_private_dir(files.dir)) return fail(*error);
  auto added = security::authorize_client(files.authorized_clients(), *line);
  if (!added) return fail(added.error());
  std::printf("%s %s%s%s in %s\n",
              *added ? "authorized" : "already authorized:", line->key.fingerprint().c_str(),
              line->comment.empty() ? "" : " ", line->comment.c_str(),
              files.authorized_clients().c_str());
  return 0;
}

// usbnet-agent pair: a one-time code in the state directory, for `usbnet pair --code`.
int make_pairing_code(const std::string& state_dir, std::uint32_t valid_s) {
  const security::AgentFiles files{state_dir};
  if (auto error = security::make_private_dir(files.dir)) return fail(*error);
  const std::string code = security::generate_pairing_code();
  if (code.empty()) return fail("pair: no random bytes for a code");
  const auto expires = static_cast<std::int64_t>(std::time(nullptr)) + valid_s;
  if (auto error = security::write_pairing_code(files.pairing_code(), {code, expires})) {
    return fail("pair: " + *error);
  }
  std::printf("Pairing code: %s\n", code.c_str());
  std::printf(
      "Valid for %u s, once, for the agent whose state directory is %s.\n"
      "On the client machine: usbnet pair HOST:PORT --code %s\n",
      valid_s, files.dir.c_str(), code.c_str());
  return 0;
}

// usbnet-agent revoke FINGERPRINT|NAME: removes a client's lines from authorized_clients.
int revoke(const std::string& state_dir, const std::string& who) {
  const security::AgentFiles files{state_dir};
  auto removed = security::revoke_clients(files.authorized_clients(), who);
  if (!removed) return fail("revoke: " + removed.error());
  if (removed->empty()) {
    std::fprintf(stderr,
                 "usbnet-agent: revoke: no line of %s has the key fingerprint or the name '%s' "
                 "(nothing changed)\n",
                 files.authorized_clients().c_str(), who.c_str());
    return 1;
  }
  for (const security::TrustedKey& k : *removed) {
    std::printf("revoked %s%s%s (line %d of %s)\n", k.key.key.fingerprint().c_str(),
                k.key.comment.empty() ? "" : " ", k.key.comment.c_str(), k.line,
                files.authorized_clients().c_str());
  }
  std::printf(
      "New connections with %s are refused from now on. To disconnect a client connected with "
      "it and release its claims, reload the running agent: systemctl reload usbnet-agent (or "
      "kill -HUP its pid)\n",
      removed->size() == 1 ? "this key" : "these keys");
  return 0;
}

// The device policy of the --config file and its other settings, kept for SIGHUP.
struct PolicySource {
  std::string config;  // empty: no file (no policy)
  std::shared_ptr<const agent::DevicePolicy> policy;
  std::string settings;  // the file's other settings at start
};

std::uint64_t monotonic_usec() {
  timespec now{};
  ::clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<std::uint64_t>(now.tv_sec) * 1000000u +
         static_cast<std::uint64_t>(now.tv_nsec) / 1000u;
}

// SIGHUP: the policy and authorized_clients again; a bad file keeps the policy in force.
void reload(PolicySource& source, agent::Server& server) {
  sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%llu",
             static_cast<unsigned long long>(monotonic_usec()));
  if (source.config.empty()) {
    log::info("SIGHUP: no --config file, so no device policy: reading authorized_clients again");
  } else if (auto loaded = agent::DevicePolicy::load(source.config); !loaded) {
    log::error("SIGHUP: {}; the device policy in force is kept", loaded.error());
  } else {
    source.policy = std::make_shared<const agent::DevicePolicy>(std::move(*loaded));
    auto settings = agent::settings_text(source.config);
    if (settings && *settings != source.settings) {
      log::warn(
          "SIGHUP: settings of {} other than [[allow]] changed: they take effect when the agent "
          "restarts",
          source.config);
    }
    log::info("SIGHUP: device policy of {}: {} [[allow]] table{}{}", source.config,
              source.policy->table_count(), source.policy->table_count() == 1 ? "" : "s",
              source.policy->restricts() ? "" : " (every client may use every device)");
  }
  server.reload(source.policy);
  log::info("SIGHUP: reloaded");
  sd_notify(0, "READY=1");
}

}  // namespace

int main(int argc, char** argv) {
  agent::keep_freed_transfer_memory();
  Flags flags;
  CLI::App app{
      "usbnet-agent: serves this machine's USB devices, and simulated ones, to programs on\n"
      "other machines that run with LD_PRELOAD=libusbnet.so."};
  app.set_version_flag("--version", std::string("usbnet-agent ") + USBNET_VERSION)
      ->configurable(false);
  app.get_help_ptr()->configurable(false);
  app.footer(
      "Every option can also be set in the file of --config, as a TOML key named like the option "
      "without its dashes (listen = \"0.0.0.0:3241\", no-usb = true, simulate = [\"mouse\"]); "
      "an option given on the command line beats the file. The service (usbnet-agent.service) "
      "reads /etc/usbnet/agent.toml. Its [[allow]] tables (clients = [...], devices = [...]; "
      "after the other settings) say which client may use which device: a client's key "
      "fingerprint, its authorized_clients comment, * or plaintext; VID:PID, class=HH, "
      "serial=TEXT or port=BUS-PORT (README, \"Who may use which device\"). SIGHUP (systemctl "
      "reload) reads them and authorized_clients again: a revoked key is disconnected, rights "
      "changed for connected clients. SIGINT and SIGTERM stop the agent: its clients' "
      "transfers are cancelled and the clients told.");
  app.add_option("--config", flags.config,
                 "Read settings from this TOML file (keys: the long options, without dashes)")
      ->configurable(false);
  app.add_option("--listen", flags.listen,
                 "Address and port to listen on (HOST:PORT, [IPv6]:PORT, or :PORT for all "
                 "addresses; port 0 picks a free one)")
      ->capture_default_str();
  app.add_option("--export", flags.export_filter,
                 "Devices to export, as VID:PID in hex, comma-separated; '*' matches anything "
                 "(1209:*, *:*). The hubs above an exported device are listed with it")
      ->capture_default_str();
  app.add_option("--simulate", flags.simulate,
                 "Simulated devices to add (at most 7, on the ports of a simulated root hub): " +
                     agent::simulated_device_names())
      ->delimiter(',');
  app.add_flag("--no-usb", flags.no_usb, "Do not export the machine's real USB devices");
  app.add_option("--log-level", flags.log_level, "error, warn, info, debug or trace")
      ->capture_default_str();
  app.add_option("--heartbeat", flags.heartbeat_ms,
                 "Milliseconds of silence after which a heartbeat frame is sent")
      ->capture_default_str()
      ->check(CLI::Range(100u, 600000u));
  app.add_option("--dead-after", flags.dead_after_ms,
                 "Milliseconds without any frame from a client before it is considered gone "
                 "(until its HELLO announces its own heartbeat: then three of its intervals)")
      ->capture_default_str()
      ->check(CLI::Range(300u, 3600000u));
  app.add_option("--piece-size", flags.piece_size,
                 "Largest payload piece per frame, in bytes (512 to 1048576)")
      ->capture_default_str()
      ->check(CLI::Range(wire::kMinPieceSize, wire::kMaxPieceSize));
  app.add_option("--rescan", flags.rescan_ms,
                 "Milliseconds between enumerations of the real USB devices, which catch "
                 "arrivals and departures libusb's hotplug does not report (as without udevd); "
                 "0: rely on libusb's hotplug alone")
      ->capture_default_str()
      ->check(CLI::Range(0u, 3600000u));
  app.add_option("--pcap", flags.pcap,
                 "Record every URB handed to a device, and its completion, in this file as a "
                 "Linux usbmon capture (pcap, for Wireshark); appends to an earlier capture");
  app.add_option("--pcap-max-bytes", flags.pcap_max_bytes,
                 "Stop capturing (with one warning) before the --pcap file grows past this size")
      ->capture_default_str()
      ->check(CLI::Range(std::uint64_t{4096}, std::uint64_t{1} << 50));
  agent::add_limit_options(app, flags.limits);
  agent::add_security_options(app, flags.security);
  app.add_option("--write-udev-rules", flags.write_udev_rules,
                 "Write udev rules that give the group 'usbnet' access to the exported devices "
                 "(hubs excepted) to this file ('-': standard output), and exit")
      ->configurable(false);
  std::string authorize_line;
  auto* authorize_command = app.add_subcommand(
      "authorize",
      "Let a client in: add its key line (what `usbnet key` or `usbnet pair` prints on the "
      "client) to authorized_clients in the state directory, and exit; the agent reads the file "
      "at every connection, so no restart is needed");
  authorize_command->add_option("keyline", authorize_line, "usbnet-ed25519 BASE64 [COMMENT]")
      ->required();
  authorize_command->fallthrough();  // --state-dir may come after it
  authorize_command->configurable(false);
  std::uint32_t pair_valid_s = 600;
  auto* pair_command = app.add_subcommand(
      "pair",
      "Make a one-time pairing code for a new client, print it, and exit: the running agent "
      "with the same state directory then lets in the one client that types it into `usbnet "
      "pair HOST:PORT --code CODE`, which also pins this agent's key. The code is used once; "
      "five wrong codes forget it, and each wrong one holds off pairing for a doubling time");
  pair_command->add_option("--valid", pair_valid_s, "Seconds until the code expires (1 to 86400)")
      ->capture_default_str()
      ->check(CLI::Range(1u, 86400u));
  pair_command->fallthrough();  // --state-dir may come after it
  pair_command->configurable(false);
  std::string revoke_who;
  auto* revoke_command = app.add_subcommand(
      "revoke",
      "Cut a client off: remove the lines of this key fingerprint (SHA256:...) or name (a "
      "line's comment) from authorized_clients in the state directory, print them, and exit. "
      "New connections with that key are refused at once; reload the running agent "
      "(systemctl reload usbnet-agent, or kill -HUP) to disconnect a client connected with it "
      "and release its claims");
  revoke_command->add_option("client", revoke_who, "SHA256:... or NAME")->required();
  revoke_command->fallthrough();  // --state-dir may come after it
  revoke_command->configurable(false);
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    return fail(std::string(e.what()) + " (see --help)");
  }
  PolicySource policy{flags.config, std::make_shared<const agent::DevicePolicy>(), {}};
  if (!flags.config.empty()) {
    if (auto error = agent::apply_config_file(app, flags.config)) return fail(*error);
    auto loaded = agent::DevicePolicy::load(flags.config);
    if (!loaded) return fail(loaded.error());
    policy.policy = std::make_shared<const agent::DevicePolicy>(std::move(*loaded));
    if (auto settings = agent::settings_text(flags.config)) policy.settings = std::move(*settings);
  }
  if (authorize_command->parsed()) return authorize(flags.security.state_dir, authorize_line);
  if (pair_command->parsed()) return make_pairing_code(flags.security.state_dir, pair_valid_s);
  if (revoke_command->parsed()) return revoke(flags.security.state_dir, revoke_who);

  log::set_prefix("usbnet-agent");
  const auto level = log::parse_level(flags.log_level);
  if (!level)
    return fail("--log-level: '" + flags.log_level +
                "' is not one of error, warn, info, debug, trace");
  log::set_level(*level);
  auto listen =
      transport::parse_endpoint(flags.listen, wire::kDefaultPort, transport::PortZero::Allowed);
  if (!listen) return fail("--listen: " + listen.error());
  auto filter = DeviceFilter::parse(flags.export_filter);
  if (!filter) return fail("--export: " + filter.error());
  if (!flags.write_udev_rules.empty()) return write_udev_rules(flags.write_udev_rules, *filter);
  std::shared_ptr<agent::UrbCapture> capture;
  if (!flags.pcap.empty()) {
    auto file = capture::PcapFile::open(flags.pcap, flags.pcap_max_bytes, "--pcap");
    if (!file) return fail(file.error());
    capture = std::make_shared<agent::UrbCapture>(std::move(*file));
  }

  asio::io_context io;
  agent::DeviceRegistry registry(*filter);
  std::optional<agent::LibusbOptions> real_usb;
  if (!flags.no_usb) real_usb = agent::LibusbOptions{std::chrono::milliseconds(flags.rescan_ms)};
  auto backends = agent::make_backends(io.get_executor(), flags.simulate, real_usb);
  if (!backends) return fail("--simulate: " + backends.error());
  // The key, once every flag is known to be good (a bad flag touches no file).
  auto security = agent::AgentSecurity::load(flags.security.state_dir, flags.security.client_ca);
  if (!security) return fail(security.error());
  log::info("{} key {} ({}){}", (*security)->key_created() ? "created the agent's" : "agent",
            (*security)->key().fingerprint(), (*security)->files().key().string(),
            (*security)->key_created() ? ": clients compare this fingerprint when they pair" : "");

  agent::ServerOptions options;
  options.listen = *listen;
  options.session.agent_name = std::string("usbnet-agent ") + USBNET_VERSION;
  options.session.heartbeat_ms = flags.heartbeat_ms;
  options.connection.heartbeat = std::chrono::milliseconds(flags.heartbeat_ms);
  options.connection.dead_after = std::chrono::milliseconds(flags.dead_after_ms);
  options.connection.piece_size = flags.piece_size;
  options.session.capture = capture;
  options.session.limits = flags.limits.client;
  options.session.policy = policy.policy;
  options.session.policy_origin = flags.config;
  if (policy.policy->restricts()) {
    log::info("device policy: {} [[allow]] table{} in {}; a client none names sees no device",
              policy.policy->table_count(), policy.policy->table_count() == 1 ? "" : "s",
              flags.config);
  }
  options.limits = flags.limits.connection_limits();
  options.security = *security;
  options.insecure = flags.security.insecure;
  // Before the port opens: a SIGHUP from then on reloads, never kills.
  asio::signal_set signals(io, SIGINT, SIGTERM);
  asio::signal_set hangup(io, SIGHUP);
  agent::Server server(io, registry, options);
  if (auto error = server.start()) {
    std::fprintf(stderr, "usbnet-agent: %s\n", error->c_str());
    return 1;
  }
  for (auto& backend : *backends) backend->start(registry);
  log::info("listening on {} (port {}), exporting {}", listen->to_string(), server.port(),
            filter->to_string());
  // Under systemd (Type=notify): ready once the port is open and the devices are reported.
  sd_notifyf(0, "READY=1\nSTATUS=listening on %s (port %u)", listen->to_string().c_str(),
             static_cast<unsigned>(server.port()));

  std::function<void()> await_hangup = [&] {
    hangup.async_wait([&](const boost::system::error_code& ec, int) {
      if (ec) return;
      reload(policy, server);
      await_hangup();
    });
  };
  await_hangup();
  signals.async_wait([&](const boost::system::error_code& ec, int signal) {
    if (ec) return;
    hangup.cancel();
    log::info("{}: shutting down", signal == SIGINT ? "SIGINT" : "SIGTERM");
    sd_notify(0, "STOPPING=1");
    server.stop();
    for (auto& backend : *backends) backend->stop();
    io.stop();
  });
  std::signal(SIGPIPE, SIG_IGN);
  io.run();
  // Let the cancellations and closes that the shutdown started finish, for two seconds at most.
  io.restart();
  io.run_for(std::chrono::seconds(2));
  backends->clear();
  log::info("stopped");
  return 0;
}
