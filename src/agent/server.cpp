#include "agent/server.h"

#include <fcntl.h>
#include <sys/socket.h>

#include <boost/asio/ip/v6_only.hpp>
#include <boost/asio/steady_timer.hpp>

#include "agent/incoming_channel.h"
#include "common/log.h"
#include "security/trust_files.h"
#include "transport/asio_connection.h"
#include "usbnet/wire.h"

namespace usbnet::agent {

namespace asio = boost::asio;
using asio::ip::tcp;

namespace {

// The largest HELLO there is (header, fixed body, auth data, name): all a client may send
// before its HELLO is accepted.
constexpr std::uint32_t kMaxHelloFrame = 12 + 16 + wire::kMaxAuthLength + 255;

}  // namespace

Server::Server(asio::io_context& io, DeviceRegistry& registry, ServerOptions options)
    : io_(io),
      registry_(registry),
      options_(std::move(options)),
      acceptor_(io),
      quota_(options_.limits) {}

std::optional<std::string> Server::start() {
  boost::system::error_code ec;
  const std::string& host = options_.listen.host;
  tcp::endpoint endpoint;
  // ":PORT" and "[::]:PORT": every address, IPv6 and IPv4 on one dual-stack socket (IPv4
  // alone where the machine has no IPv6).
  const bool every_address = host.empty() || host == "::";
  if (every_address) {
    acceptor_.open(tcp::v6(), ec);
    if (!ec) acceptor_.set_option(asio::ip::v6_only(false), ec);
    if (!ec) {
      endpoint = tcp::endpoint(tcp::v6(), options_.listen.port);
    } else if (host.empty()) {
      boost::system::error_code ignored;
      acceptor_.close(ignored);
      acceptor_.open(tcp::v4(), ec);
      endpoint = tcp::endpoint(tcp::v4(), options_.listen.port);
    }
  } else {
    tcp::resolver resolver(io_);
    auto results = resolver.resolve(host, std::to_string(options_.listen.port),
                                    tcp::resolver::passive | tcp::resolver::numeric_service, ec);
    if (ec || results.empty()) {
      return fmt::format("cannot listen on {}: {}", options_.listen.to_string(),
                         ec ? ec.message() : "no such address");
    }
    endpoint = *results.begin();
    acceptor_.open(endpoint.protocol(), ec);
  }
  if (!ec) acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor_.bind(endpoint, ec);
  if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return fmt::format("cannot listen on {}: {}", options_.listen.to_string(), ec.message());
  }
  ::fcntl(acceptor_.native_handle(), F_SETFD, FD_CLOEXEC);
  const bool loopback = endpoint.address().is_loopback();
  plaintext_allowed_ = loopback || options_.insecure;
  if (options_.insecure && !loopback) {
    log::warn(
        "--insecure: {} is reachable beyond this machine without authentication: whoever "
        "reaches the port in plaintext can use the exported devices. Use it only on a trusted "
        "network; without --insecure only TLS clients in authorized_clients get in",
        options_.listen.to_string());
  } else if (options_.insecure) {
    log::warn(
        "--insecure: plaintext clients are served, unauthenticated (as on any loopback "
        "agent); TLS clients are checked against authorized_clients");
  } else if (loopback) {
    log::info(
        "on loopback: plaintext clients of this machine are served; TLS clients must be "
        "in authorized_clients");
  } else {
    log::info("TLS 1.3 required: clients must present a key in authorized_clients");
  }
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
      accepted(std::move(socket));
    }
    accept_next();
  });
}

void Server::accepted(tcp::socket socket) {
  boost::system::error_code ignored;
  const auto remote = socket.remote_endpoint(ignored);
  // An IPv4 client of a dual-stack socket counts as its IPv4 address.
  const auto address = remote.address().is_v6() && remote.address().to_v6().is_v4_mapped()
                           ? asio::ip::address(asio::ip::make_address_v4(asio::ip::v4_mapped,
                                                                         remote.address().to_v6()))
                           : remote.address();
  transport::StreamOptions copts = options_.connection;
  copts.peer_name = address.is_v6() ? fmt::format("[{}]:{}", address.to_string(), remote.port())
                                    : fmt::format("{}:{}", address.to_string(), remote.port());
  auto admitted = quota_.admit(address.to_string());
  if (const auto* refused = std::get_if<ConnectionQuota::Refused>(&admitted)) {
    return refuse(std::move(socket), copts.peer_name, refused->reason);
  }
  copts.frame_limit_until_admitted = kMaxHelloFrame;
  auto identity = std::make_shared<ClientIdentity>();
  SessionOptions session_options = options_.session;
  if (options_.security) session_options.pairing = options_.security->pairing();
  auto session = std::make_shared<Session>(registry_, std::move(session_options), identity);
  session->hold(std::move(std::get<ConnectionQuota::Ticket>(admitted)));
  auto connection = std::make_shared<transport::AsioConnection>(
      io_.get_executor(),
      std::make_unique<IncomingChannel>(socket.release(), copts.piece_size, options_.security,
                                        plaintext_allowed_, identity),
      copts, session);
  session->attach(connection->shared_stream());
  registry_.add_session(session);
  std::erase_if(sessions_, [](const auto& s) { return s.expired(); });
  sessions_.push_back(session);
  log::debug("{}: connection accepted", copts.peer_name);
  connection->start();
  start_hello_deadline(session);
}

void Server::refuse(tcp::socket socket, const std::string& peer, const std::string& reason) {
  if (const auto times = refused_log_.due()) {
    log::warn("refused a connection from {}: {} ({} refused in the last interval)", peer, reason,
              times);
  }
  const wire::Bytes frame = wire::encode(wire::Error{0, wire::error_code::kBusy, reason});
  [[maybe_unused]] const ssize_t n =
      ::send(socket.native_handle(), frame.data(), frame.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
  boost::system::error_code ignored;
  socket.shutdown(tcp::socket::shutdown_both, ignored);
  socket.close(ignored);
}

void Server::start_hello_deadline(const std::shared_ptr<Session>& session) {
  const auto timeout = options_.limits.hello_timeout;
  auto timer = std::make_shared<asio::steady_timer>(io_, timeout);
  timer->async_wait([this, timer, timeout,
                     weak = std::weak_ptr<Session>(session)](const boost::system::error_code& ec) {
    if (ec) return;
    auto s = weak.lock();
    if (!s || !s->hello_deadline_passed(timeout)) return;
    if (const auto times = hello_log_.due()) {
      log::warn(
          "{}: closed: no HELLO within {} ms of connecting ({} closed so in the last "
          "interval)",
          s->peer(), timeout.count(), times);
    }
  });
}

void Server::reload(std::shared_ptr<const DevicePolicy> policy) {
  options_.session.policy = policy;
  std::optional<security::AuthorizedClients> authorized;
  if (options_.security) {
    auto loaded =
        security::AuthorizedClients::load(options_.security->files().authorized_clients());
    if (loaded) {
      authorized = std::move(*loaded);
    } else {
      log::error(
          "reload: {}: no connected client is disconnected for it (new TLS clients are "
          "refused until it is fixed)",
          loaded.error());
    }
  }
  std::erase_if(sessions_, [](const auto& s) { return s.expired(); });
  const auto sessions = sessions_;  // a copy: revoking ends sessions
  for (const auto& weak : sessions) {
    if (auto s = weak.lock()) s->reload(policy, authorized ? &*authorized : nullptr);
  }
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
