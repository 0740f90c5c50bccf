#include "agent/server.h"

#include <fcntl.h>

#include "common/log.h"
#include "transport/asio_connection.h"
#include "transport/tcp_channel.h"

namespace usbnet::agent {

namespace asio = boost::asio;
using asio::ip::tcp;

Server::Server(asio::io_context& io, DeviceRegistry& registry, ServerOptions options)
    : io_(io), registry_(registry), options_(std::move(options)), acceptor_(io) {}

std::optional<std::string> Server::start() {
  boost::system::error_code ec;
  tcp::resolver resolver(io_);
  const std::string& host = options_.listen.host;
  auto results =
      resolver.resolve(host.empty() ? "0.0.0.0" : host, std::to_string(options_.listen.port),
                       tcp::resolver::passive | tcp::resolver::numeric_service, ec);
  if (ec || results.empty()) {
    return fmt::format("cannot listen on {}: {}", options_.listen.to_string(),
                       ec ? ec.message() : "no such address");
  }
  const tcp::endpoint endpoint = *results.begin();
  acceptor_.open(endpoint.protocol(), ec);
  if (!ec) acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor_.bind(endpoint, ec);
  if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return fmt::format("cannot listen on {}: {}", options_.listen.to_string(), ec.message());
  }
  ::fcntl(acceptor_.native_handle(), F_SETFD, FD_CLOEXEC);
  accept_next();
  return std::nullopt;
}

std::uint16_t Server::port() const {
  boost::system::error_code ec;
  return acceptor_.local_endpoint(ec).port();
}

void Server::accept_next() {
  acceptor_.async_accept([this](const boost::system::error_code& ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted) return;
    if (ec) {
      log::warn("accepting a connection failed: {}", ec.message());
    } else {
      boost::system::error_code ignored;
      const auto remote = socket.remote_endpoint(ignored);
      transport::StreamOptions copts = options_.connection;
      copts.peer_name = fmt::format("{}:{}", remote.address().to_string(), remote.port());
      auto session = std::make_shared<Session>(registry_, options_.session);
      auto connection = std::make_shared<transport::AsioConnection>(
          io_.get_executor(),
          std::make_unique<transport::TcpChannel>(socket.release(), copts.piece_size), copts,
          session);
      session->attach(connection->shared_stream());
      registry_.add_session(session);
      std::erase_if(sessions_, [](const auto& s) { return s.expired(); });
      sessions_.push_back(session);
      log::debug("{}: connection accepted", copts.peer_name);
      connection->start();
    }
    accept_next();
  });
}

void Server::stop() {
  boost::system::error_code ignored;
  acceptor_.close(ignored);
  for (const auto& weak : sessions_) {
    if (auto s = weak.lock()) s->shut_down();
  }
  sessions_.clear();
}

}  // namespace usbnet::agent
