#include "agent/limit_flags.h"

namespace usbnet::agent {

void add_limit_options(CLI::App& app, LimitFlags& flags) {
  app.add_option("--max-connections", flags.connections.max_connections,
                 "Client connections the agent holds at once; more are refused (with an error "
                 "to the client) until some end")
      ->capture_default_str()
      ->check(CLI::Range(std::size_t{1}, std::size_t{65536}));
  app.add_option("--max-connections-per-address", flags.connections.max_per_address,
                 "Client connections from one IP address at once")
      ->capture_default_str()
      ->check(CLI::Range(std::size_t{1}, std::size_t{65536}));
  app.add_option("--hello-timeout", flags.hello_timeout_ms,
                 "Milliseconds a new connection has to complete its HELLO before it is closed")
      ->capture_default_str()
      ->check(CLI::Range(100u, 600000u));
  app.add_option("--max-urbs", flags.client.max_urbs,
                 "URBs one client may have unanswered; past it a URB completes at once with "
                 "ERROR")
      ->capture_default_str()
      ->check(CLI::Range(std::size_t{1}, std::size_t{1} << 20));
  app.add_option("--max-urb-memory", flags.client.max_urb_memory,
                 "Bytes of transfer buffers one client's URBs may hold, until their "
                 "completions are sent; past it a URB completes at once with ERROR")
      ->capture_default_str()
      ->check(CLI::Range(std::size_t{1} << 20, std::size_t{1} << 40));
  app.add_option("--max-send-queue", flags.client.max_send_queue,
                 "Bytes of answers waiting to be sent to one client past which the agent stops "
                 "reading that client's requests until it reads its answers")
      ->capture_default_str()
      ->check(CLI::Range(std::size_t{64} << 10, std::size_t{1} << 34));
}

}  // namespace usbnet::agent
