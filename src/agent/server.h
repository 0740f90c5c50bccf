// The agent's listening socket: one Session per accepted client.
#pragma once

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <memory>
#include <string>
#include <vector>

#include "agent/registry.h"
#include "agent/session.h"
#include "transport/endpoint.h"
#include "transport/framed_stream.h"
#include "usbnet/expected.h"

namespace usbnet::agent {

struct ServerOptions {
  transport::Endpoint listen;
  SessionOptions session;
  transport::StreamOptions connection;
};

class Server {
 public:
  Server(boost::asio::io_context& io, DeviceRegistry& registry, ServerOptions options);

  // Binds and listens; the error is one sentence for the user ("address in use", ...).
  std::optional<std::string> start();
  // Stops accepting and closes every client connection.
  void stop();
  std::uint16_t port() const;  // the bound port (useful with port 0)

 private:
  void accept_next();

  boost::asio::io_context& io_;
  DeviceRegistry& registry_;
  ServerOptions options_;
  boost::asio::ip::tcp::acceptor acceptor_;
  std::vector<std::weak_ptr<Session>> sessions_;
};

}  // namespace usbnet::agent
