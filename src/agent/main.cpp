// usbnet-agent: serves the USB devices of this machine (and simulated ones) to usbnet clients.
#include <CLI/CLI.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <csignal>
#include <cstdio>
#include <memory>
#include <vector>

#include "agent/backends.h"
#include "agent/registry.h"
#include "agent/server.h"
#include "common/device_filter.h"
#include "common/log.h"
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
};

int fail(const std::string& message) {
  std::fprintf(stderr, "usbnet-agent: %s\n", message.c_str());
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  Flags flags;
  CLI::App app{
      "usbnet-agent: serves this machine's USB devices, and simulated ones, to programs on\n"
      "other machines that run with LD_PRELOAD=libusbnet.so."};
  app.set_version_flag("--version", std::string("usbnet-agent ") + USBNET_VERSION);
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
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    return fail(std::string(e.what()) + " (see --help)");
  }

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

  asio::io_context io;
  agent::DeviceRegistry registry(*filter);
  std::optional<agent::LibusbOptions> real_usb;
  if (!flags.no_usb) real_usb = agent::LibusbOptions{std::chrono::milliseconds(flags.rescan_ms)};
  auto backends = agent::make_backends(io.get_executor(), flags.simulate, real_usb);
  if (!backends) return fail("--simulate: " + backends.error());

  agent::ServerOptions options;
  options.listen = *listen;
  options.session.agent_name = std::string("usbnet-agent ") + USBNET_VERSION;
  options.session.heartbeat_ms = flags.heartbeat_ms;
  options.connection.heartbeat = std::chrono::milliseconds(flags.heartbeat_ms);
  options.connection.dead_after = std::chrono::milliseconds(flags.dead_after_ms);
  options.connection.piece_size = flags.piece_size;
  agent::Server server(io, registry, options);
  if (auto error = server.start()) {
    std::fprintf(stderr, "usbnet-agent: %s\n", error->c_str());
    return 1;
  }
  for (auto& backend : *backends) backend->start(registry);
  log::info("listening on {} (port {}), exporting {}", listen->to_string(), server.port(),
            filter->to_string());

  asio::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](const boost::system::error_code& ec, int signal) {
    if (ec) return;
    log::info("{}: shutting down", signal == SIGINT ? "SIGINT" : "SIGTERM");
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
