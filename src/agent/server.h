// The agent's listening socket: one Session per accepted client, as many as the connection
// limits allow (limits.h); a connection that does not complete its HELLO in time is closed.
// Each connection is TLS or plaintext, as the client's first bytes say (incoming_channel.h);
// plaintext is served only when the agent listens on loopback alone, or with --insecure.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <memory>
#include <string>
#include <vector>

#include "agent/agent_security.h"
#include "agent/connection_quota.h"
#include "agent/limits.h"
#include "agent/registry.h"
#include "agent/session.h"
#include "common/log_limiter.h"
#include "transport/endpoint.h"
#include "transport/framed_stream.h"
#include "usbnet/expected.h"

namespace usbnet::agent {

struct ServerOptions {
  transport::Endpoint listen;
  SessionOptions session;
  transport::StreamOptions connection;
  ConnectionLimits limits;
  // The agent's key and its rule for TLS clients.
  std::shared_ptr<const AgentSecurity> security;
  // --insecure: plaintext clients are served beyond loopback too.
  bool insecure = false;
};

class Server {
 public:
  Server(boost::asio::io_context& io, DeviceRegistry& registry, ServerOptions options);

  // Binds and listens; the error is one sentence for the user ("address in use", ...).
  std::optional<std::string> start();
  // Stops accepting and closes every client connection.
  void stop();
  // SIGHUP: `policy` from now on, for new clients and connected ones, and authorized_clients
  // read again (Session::reload): revoked keys are disconnected, changed rights applied.
  void reload(std::shared_ptr<const DevicePolicy> policy);
  std::uint16_t port() const;  // the bound port (useful with port 0)

 private:
  void accept_next();
  void accepted(boost::asio::ip::tcp::socket socket);
  // Tells the client why in one ERROR frame (if its socket takes it at once) and closes.
  void refuse(boost::asio::ip::tcp::socket socket, const std::string& peer,
              const std::string& reason);
  void start_hello_deadline(const std::shared_ptr<Session>& session);

  boost::asio::io_context& io_;
  DeviceRegistry& registry_;
  ServerOptions options_;
  boost::asio::ip::tcp::acceptor acceptor_;
  std::vector<std::weak_ptr<Session>> sessions_;
  ConnectionQuota quota_;
  bool plaintext_allowed_ = false;  // loopback only, or --insecure
  log::Limiter refused_log_;
  log::Limiter hello_log_;
};

}  // namespace usbnet::agent
