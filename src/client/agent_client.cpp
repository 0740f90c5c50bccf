#include "client/agent_client.h"

#include <algorithm>

#include <boost/asio/connect.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <condition_variable>
#include <future>
#include <map>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "common/log.h"
#include "transport/asio_connection.h"
#include "transport/tcp_channel.h"
#include "transport/tls_channel.h"

namespace usbnet::client {

namespace asio = boost::asio;
using asio::ip::tcp;
using wire::error_code::kBusy;
using wire::error_code::kIo;
using wire::error_code::kNoDevice;

class AgentClient::Impl {
 public:
  Impl(const ClientOptions& options, ClientListener* listener)
      : options_(options),
        listener_(listener),
        work_(asio::make_work_guard(io_)),
        connect_timer_(io_),
        retry_timer_(io_),
        watchdog_(io_),
        thread_([this] { io_.run(); }) {}

  ~Impl() {
    asio::post(io_, [this] {
      closing_ = true;
      retry_timer_.cancel();
      connect_timer_.cancel();
      watchdog_.cancel();
      if (socket_) socket_->close();
      if (resolver_) resolver_->cancel();
      if (conn_) conn_->stream().close("client shutting down");
    });
    // Let the close complete everything, then stop.
    {
      std::unique_lock lock(mutex_);
      state_changed_.wait_for(lock, std::chrono::seconds(5), [this] { return !conn_; });
    }
    work_.reset();
    io_.stop();
    thread_.join();
  }

  // ---- connecting ------------------------------------------------------------------------

  std::optional<std::string> ensure_connected() {
    std::unique_lock lock(mutex_);
    if (state_ == State::Ready) return std::nullopt;
    if (state_ == State::Idle) {
      if (retry_pending_) return last_error_;
      state_ = State::Connecting;
      asio::post(io_, [this] { start_connect(); });
    }
    const auto deadline = Clock::now() + options_.connect_timeout + std::chrono::milliseconds(500);
    state_changed_.wait_until(lock, deadline, [this] { return state_ != State::Connecting; });
    if (state_ == State::Ready) return std::nullopt;
    if (state_ == State::Connecting) return std::string("timed out connecting");
    return last_error_;
  }

  void start_connect() {
    if (closing_) return;
    {
      std::lock_guard lock(mutex_);
      state_ = State::Connecting;
      retry_pending_ = false;
    }
    const std::uint64_t attempt = ++attempt_;
    // TLS or plaintext, decided now: a key pinned since the last attempt counts.
    channel_security_.reset();
    if (options_.security) {
      auto decision = options_.security(options_.agent);
      if (!decision) return connect_failed(decision.error());
      channel_security_ = std::move(*decision);
    }
    connect_timer_.expires_after(options_.connect_timeout);
    connect_timer_.async_wait([this, attempt](const boost::system::error_code& ec) {
      if (ec || attempt != attempt_) return;
      {
        std::lock_guard lock(mutex_);
        if (state_ == State::Ready) return;
      }
      connect_failed("timed out connecting");
    });
    resolver_.emplace(io_);
    resolver_->async_resolve(
        options_.agent.host, std::to_string(options_.agent.port),
        [this, attempt](const boost::system::error_code& ec, tcp::resolver::results_type results) {
          if (attempt != attempt_) return;
          if (ec)
            return connect_failed("cannot resolve " + options_.agent.host + ": " + ec.message());
          socket_.emplace(io_);
          asio::async_connect(
              *socket_, results,
              [this, attempt](const boost::system::error_code& ec, const tcp::endpoint&) {
                if (attempt != attempt_) return;
                if (ec) return connect_failed(ec.message());
                on_socket_connected();
              });
        });
  }

  void on_socket_connected() {
    transport::StreamOptions stream_options;
    stream_options.heartbeat = options_.heartbeat;
    stream_options.dead_after = options_.dead_after;
    stream_options.piece_size = options_.piece_size;
    stream_options.peer_name = options_.agent.to_string();
    auto handler = std::make_shared<Handler>(this, ++generation_);
    std::unique_ptr<transport::ByteChannel> channel;
    tls_ = channel_security_.has_value();
    if (channel_security_) {
      channel = std::make_unique<transport::TlsChannel>(
          socket_->release(), options_.piece_size,
          std::make_unique<security::TlsSession>(channel_security_->context,
                                                 channel_security_->verify_agent));
    } else {
      channel = std::make_unique<transport::TcpChannel>(socket_->release(), options_.piece_size);
    }
    auto conn = std::make_shared<transport::AsioConnection>(io_.get_executor(), std::move(channel),
                                                            stream_options, handler);
    socket_.reset();
    {
      std::lock_guard lock(mutex_);
      conn_ = conn;
      hello_id_ = next_id_locked();
    }
    conn->start();
    if (!options_.hello_auth) send_hello(*conn, wire::AuthMethod::None, {});
  }

  void send_hello(transport::AsioConnection& conn, wire::AuthMethod method, wire::Bytes auth) {
    conn.stream().send(wire::Hello{hello_id_, wire::kProtocolVersion,
                                   wire::kCapIso | wire::kCapHotplug | wire::kCapKernelDriver,
                                   static_cast<std::uint32_t>(options_.heartbeat.count()), method,
                                   std::move(auth), options_.name});
  }

  // With hello_auth: the HELLO, now that the agent's key is known.
  void on_handshake_done(std::uint64_t generation) {
    if (generation != generation_ || !options_.hello_auth) return;
    std::shared_ptr<transport::AsioConnection> conn;
    {
      std::lock_guard lock(mutex_);
      conn = conn_;
    }
    if (!conn) return;
    auto [method, auth] = options_.hello_auth();
    send_hello(*conn, method, std::move(auth));
  }

  void connect_failed(const std::string& reason) {
    ++attempt_;  // ignore whatever the abandoned attempt still reports
    connect_timer_.cancel();
    if (socket_) socket_->close();
    socket_.reset();
    std::shared_ptr<transport::AsioConnection> conn;
    {
      std::lock_guard lock(mutex_);
      conn = conn_;
      last_error_ = reason;
      if (!conn) set_idle_locked();
    }
    // A connection that got as far as the handshake ends through on_closed.
    if (conn) conn->stream().close(reason);
    if (!conn) schedule_retry();
  }

  void set_idle_locked() {
    state_ = State::Idle;
    state_changed_.notify_all();
  }

  void schedule_retry() {
    if (!options_.reconnect || closing_) return;
    {
      std::lock_guard lock(mutex_);
      retry_pending_ = true;
    }
    retry_timer_.expires_after(retry_delay_);
    retry_delay_ = std::min(retry_delay_ * 2, options_.reconnect_delay_max);
    retry_timer_.async_wait([this](const boost::system::error_code& ec) {
      if (!ec) start_connect();
    });
  }

  // ---- messages from the agent -------------------------------------------------------------

  struct Handler : transport::StreamHandler {
    Handler(Impl* impl, std::uint64_t generation) : impl(impl), generation(generation) {}
    void on_message(wire::Message&& m) override { impl->on_message(std::move(m)); }
    std::span<std::uint8_t> payload_destination(const wire::Message& head,
                                                std::size_t length) override {
      std::lock_guard lock(impl->mutex_);
      return impl->urbs_.landing_place(head, length);
    }
    void on_closed(const std::string& reason) override { impl->on_closed(generation, reason); }
    void on_handshake_done() override { impl->on_handshake_done(generation); }
    Impl* impl;
    std::uint64_t generation;
  };

  // Messages arrive on the io thread, or on a thread in service(). URB, reply and device
  // events are handled where they arrive (under mutex_); the handshake belongs to the io thread.
  void on_message(wire::Message&& message) {
    const bool handshake = std::holds_alternative<wire::Hello>(message) ||
                           std::holds_alternative<wire::DeviceList>(message);
    if (handshake && !io_.get_executor().running_in_this_thread()) {
      // Neither carries payload views: the copy is whole.
      asio::post(io_, [this, m = std::move(message)]() mutable {
        std::visit([this](auto& x) { handle(x); }, m);
      });
      return;
    }
    std::visit([this](auto& m) { handle(m); }, message);
  }

  void handle(const wire::Hello& hello) {
    if (hello.id != hello_id_ || handshake_done_) return protocol_fault("unexpected HELLO");
    if (options_.judge_agent_hello) {
      if (auto error = options_.judge_agent_hello(hello)) {
        refusal_ = *error;
        conn_->stream().close(*error);
        return;
      }
    }
    handshake_done_ = true;
    conn_->stream().set_peer_heartbeat(std::chrono::milliseconds(hello.heartbeat_ms));
    std::lock_guard lock(mutex_);
    capabilities_ = hello.capabilities;
    list_id_ = next_id_locked();
    conn_->stream().send(wire::ListDevices{list_id_});
    log::debug("connected to {} ({})", options_.agent.to_string(), hello.name);
  }

  void handle(const wire::DeviceList& list) {
    if (list.id != list_id_) return protocol_fault("unexpected DEVICE_LIST");
    connect_timer_.cancel();
    retry_delay_ = options_.reconnect_delay_min;
    {
      std::lock_guard lock(mutex_);
      devices_ = list.devices;
    }
    // The listener learns of the devices before anyone waiting in ensure_connected() wakes up
    // to ask for them.
    listener_->on_connected(list.devices, conn_->stream().pollable_fd());
    std::lock_guard lock(mutex_);
    state_ = State::Ready;
    state_changed_.notify_all();
  }

  void handle(const wire::DeviceArrived& arrived) {
    {
      std::lock_guard lock(mutex_);
      if (state_ != State::Ready) return;  // the list, when it comes, includes it
      std::erase_if(devices_,
                    [&](const auto& d) { return d.device_id == arrived.device.device_id; });
      devices_.push_back(arrived.device);
    }
    listener_->on_device_arrived(arrived.device);
  }

  void handle(const wire::DeviceLeft& left) {
    {
      std::lock_guard lock(mutex_);
      if (state_ != State::Ready) return;
      std::erase_if(devices_, [&](const auto& d) { return d.device_id == left.device_id; });
    }
    listener_->on_device_left(left.device_id);
  }

  void handle(const wire::Reply& reply) { answer(reply.id, reply.value); }

  void handle(const wire::Error& error) {
    if (error.id == 0 || error.id == hello_id_) {
      // Reported once, as the reason the connection ended.
      log::debug("agent {}: {}", options_.agent.to_string(), error.text);
      refusal_ = "agent refused the connection: " + error.text;
      return;  // the agent closes the connection after it
    }
    answer(error.id, Unexpected{error.code});
  }

  void handle(const wire::UrbComplete& complete) {
    std::unique_lock lock(mutex_);
    auto ready = urbs_.on_complete(complete);
    lock.unlock();
    if (!ready) return protocol_fault(ready.error());
    deliver(std::move(*ready));
  }

  void handle(const wire::UrbData& piece) {
    std::unique_lock lock(mutex_);
    auto ready = urbs_.on_data(piece);
    lock.unlock();
    if (!ready) return protocol_fault(ready.error());
    deliver(std::move(*ready));
  }

  // Requests are the client's to send; receiving one is a protocol violation.
  template <typename Other>
  void handle(const Other& other) {
    protocol_fault(
        fmt::format("unexpected {} from the agent", wire::message_type_name(wire::type_of(other))));
  }

  void protocol_fault(const std::string& what) {
    // Reported once, as the reason the connection ended.
    log::debug("agent {}: protocol violation: {}; closing the connection",
               options_.agent.to_string(), what);
    std::shared_ptr<transport::AsioConnection> conn;
    {
      std::lock_guard lock(mutex_);
      conn = conn_;
    }
    if (conn) {
      conn->stream().send(wire::Error{0, kIo, "protocol error: " + what});
      conn->stream().close("protocol violation: " + what);
    }
  }

  std::shared_ptr<transport::AsioConnection> ready_connection() const {
    std::lock_guard lock(mutex_);
    return state_ == State::Ready ? conn_ : nullptr;
  }

  void answer(std::uint32_t id, Expected<std::uint32_t, std::int32_t> result) {
    std::shared_ptr<std::promise<Expected<std::uint32_t, std::int32_t>>> waiter;
    {
      std::lock_guard lock(mutex_);
      auto it = pending_.find(id);
      if (it == pending_.end()) return;  // the requester gave up waiting
      waiter = std::move(it->second);
      pending_.erase(it);
    }
    waiter->set_value(std::move(result));
  }

  static void deliver(ReadyCompletions ready) {
    for (ReadyCompletion& r : ready) {
      if (r.done) r.done(r.result);
    }
  }

  void on_closed(std::uint64_t generation, const std::string& reason) {
    if (generation != generation_) return;
    connect_timer_.cancel();
    handshake_done_ = false;
    ReadyCompletions ready;
    decltype(pending_) pending;
    bool was_ready;
    {
      std::lock_guard lock(mutex_);
      was_ready = state_ == State::Ready;
      ready = urbs_.fail_all(wire::UrbStatus::NoDevice);
      lost_handles_.clear();
      pending.swap(pending_);
      devices_.clear();
      conn_.reset();
      // A connection the port accepted but that ended before the handshake was done: what
      // listens there is not an agent that wants us (a TLS tunnel that refused this side,
      // another service), which the bare reason ("Connection reset by peer") does not say.
      // Over TLS the reason says already what went wrong (the agent's key, or this one's).
      if (!was_ready) {
        last_error_ = !refusal_.empty() ? refusal_
                      : tls_            ? reason
                                        : "the handshake failed: " + reason +
                                   " (is a usbnet agent listening there, or did a "
                                   "tunnel in between refuse this side?)";
      }
      set_idle_locked();
    }
    refusal_.clear();
    for (auto& [id, waiter] : pending) waiter->set_value(Unexpected{kNoDevice});
    deliver(std::move(ready));
    if (was_ready && !closing_) {
      log::debug("lost agent {}: {}", options_.agent.to_string(), reason);
      listener_->on_disconnected(reason);
    }
    schedule_retry();
  }

  // ---- requests and URBs ---------------------------------------------------------------

  std::uint32_t next_id_locked() {
    do {
      ++last_id_;
    } while (last_id_ == 0 || urbs_.contains(last_id_) || pending_.contains(last_id_));
    return last_id_;
  }

  Expected<std::uint32_t, std::int32_t> request(wire::Message message) {
    auto waiter = std::make_shared<std::promise<Expected<std::uint32_t, std::int32_t>>>();
    auto result = waiter->get_future();
    std::shared_ptr<transport::AsioConnection> conn;
    std::uint32_t id;
    bool lost_handle = false;
    {
      std::lock_guard lock(mutex_);
      if (state_ != State::Ready) return Unexpected{kNoDevice};
      const std::uint32_t handle = std::visit(
          [](const auto& m) -> std::uint32_t {
            if constexpr (requires { m.handle; }) {
              return m.handle;
            } else {
              return 0;
            }
          },
          message);
      lost_handle = lost_handles_.contains(handle);
      // A lost handle serves nothing more; closing it still tells the agent to release what it
      // held, without waiting for an answer that may never come.
      if (lost_handle && !std::holds_alternative<wire::Close>(message)) {
        return Unexpected{kNoDevice};
      }
      if (lost_handle) lost_handles_.erase(handle);
      id = next_id_locked();
      std::visit(
          [id](auto& m) {
            if constexpr (requires { m.id; }) m.id = id;
          },
          message);
      if (!lost_handle) pending_.emplace(id, waiter);
      conn = conn_;
    }
    if (lost_handle) {
      conn->stream().send(message);
      return 0;
    }
    if (!conn->stream().send(message)) {
      std::lock_guard lock(mutex_);
      pending_.erase(id);
      return Unexpected{kNoDevice};
    }
    conn->reclaim();
    if (result.wait_for(options_.request_timeout) != std::future_status::ready) {
      std::lock_guard lock(mutex_);
      if (pending_.erase(id) > 0) {
        log::warn("agent {} did not answer {} within {} ms", options_.agent.to_string(),
                  wire::message_type_name(wire::type_of(message)),
                  options_.request_timeout.count());
        return Unexpected{kIo};
      }
    }
    return result.get();
  }

  Expected<std::uint32_t, std::int32_t> submit(wire::UrbSubmit submit, std::span<std::uint8_t> in,
                                               const void* owner, UrbDone done) {
    std::shared_ptr<transport::AsioConnection> conn;
    {
      std::lock_guard lock(mutex_);
      if (state_ != State::Ready) return Unexpected{kNoDevice};
      submit.trans_id = next_id_locked();
      const std::uint8_t endpoint = submit.type == wire::UrbType::Control ? 0 : submit.endpoint;
      if (lost_handles_.contains(submit.handle)) return Unexpected{kNoDevice};
      Urb urb{owner, submit.handle, endpoint, in, submit.iso_lengths, std::move(done)};
      if (submit.timeout_ms > 0) {
        urb.timeout_at = Clock::now() + std::chrono::milliseconds(submit.timeout_ms);
        urb.lost_at = urb.timeout_at + options_.timeout_grace;
      }
      const bool timed = submit.timeout_ms > 0;
      if (!urbs_.add(submit.trans_id, std::move(urb))) return Unexpected{kBusy};
      if (timed && !watchdog_armed_) {
        watchdog_armed_ = true;
        asio::post(io_, [this] { arm_watchdog(); });
      }
      conn = conn_;
    }
    const std::uint32_t trans_id = submit.trans_id;
    if (!conn->stream().send_urb(std::move(submit), nullptr)) {
      // Closed meanwhile. If the close has already reported this URB, its `done` has run and
      // the submission stands; otherwise it is taken back and the caller gets the error.
      ReadyCompletions ready;
      {
        std::lock_guard lock(mutex_);
        if (!urbs_.contains(trans_id)) return trans_id;
        ready = urbs_.finish_locally(trans_id, wire::UrbStatus::NoDevice);
      }
      ready.erase(
          std::remove_if(ready.begin(), ready.end(),
                         [&](const ReadyCompletion& r) { return r.result.trans_id == trans_id; }),
          ready.end());
      asio::post(io_, [ready = std::move(ready)]() mutable { deliver(std::move(ready)); });
      return Unexpected{kNoDevice};
    }
    return trans_id;
  }

  // Tells the agent to end `trans_id` early, or ends it here if it never left (`status`).
  void stop(const std::shared_ptr<transport::AsioConnection>& conn, std::uint32_t trans_id,
            wire::UrbStatus status) {
    if (conn && conn->stream().withdraw(trans_id) != transport::Withdrawn::NotSent) {
      conn->stream().send(wire::UrbCancel{trans_id});
      return;
    }
    // The agent never saw it: it ends here.
    ReadyCompletions ready;
    {
      std::lock_guard lock(mutex_);
      ready = urbs_.finish_locally(trans_id, status);
    }
    asio::post(io_, [ready = std::move(ready)]() mutable { deliver(std::move(ready)); });
  }

  bool cancel(const void* owner) {
    std::shared_ptr<transport::AsioConnection> conn;
    std::optional<UrbTable::CancelStart> start;
    {
      std::lock_guard lock(mutex_);
      start = urbs_.start_cancel(owner);
      if (!start) return false;
      conn = conn_;
    }
    if (start->tell_agent) stop(conn, start->trans_id, wire::UrbStatus::Cancelled);
    return true;
  }

  void forget(const void* owner) {
    std::shared_ptr<transport::AsioConnection> conn;
    std::optional<std::uint32_t> trans_id;
    {
      std::lock_guard lock(mutex_);
      trans_id = urbs_.forget(owner);
      conn = conn_;
    }
    // After withdraw() the stream holds no view of the payload either.
    if (trans_id) stop(conn, *trans_id, wire::UrbStatus::Cancelled);
  }

  // Deadlines, every 100 ms while URBs with a timeout are in flight. A URB whose timeout
  // expired is cancelled at the agent, whose answer tells what the device did (TIMED_OUT with
  // the length it moved). An agent that has not answered by the timeout plus the grace cannot
  // tell: the URB may have been done or not, and the URBs after it on its handle would go on
  // from a state the program does not know. So the handle is lost: its URBs end with NO_DEVICE
  // and every later call on it fails the same way (a reconnection brings the device back as a
  // new one).
  void arm_watchdog() {
    watchdog_.expires_after(std::chrono::milliseconds(100));
    watchdog_.async_wait([this](const boost::system::error_code& ec) {
      if (ec) return;
      UrbTable::Expiry expiry;
      std::shared_ptr<transport::AsioConnection> conn;
      {
        std::lock_guard lock(mutex_);
        expiry = urbs_.expire(Clock::now());
        conn = conn_;
        watchdog_armed_ = expiry.more;
      }
      for (std::uint32_t trans_id : expiry.cancel) stop(conn, trans_id, wire::UrbStatus::TimedOut);
      for (std::uint32_t handle : expiry.lost_handles) {
        ReadyCompletions ready;
        {
          std::lock_guard lock(mutex_);
          lost_handles_.insert(handle);
          ready = urbs_.fail_handle(handle, wire::UrbStatus::NoDevice);
        }
        log::warn(
            "agent {} did not answer a URB within its timeout and {} ms of grace: what the "
            "device did is unknown, so its handle is lost ({} transfers end with NO_DEVICE)",
            options_.agent.to_string(), options_.timeout_grace.count(), ready.size());
        deliver(std::move(ready));
      }
      if (expiry.more) arm_watchdog();
    });
  }

  // ---- state -----------------------------------------------------------------------------

  enum class State { Idle, Connecting, Ready };

  const ClientOptions& options_;
  ClientListener* listener_;
  asio::io_context io_;
  asio::executor_work_guard<asio::io_context::executor_type> work_;
  // io thread only:
  asio::steady_timer connect_timer_;
  asio::steady_timer retry_timer_;
  asio::steady_timer watchdog_;
  std::optional<tcp::resolver> resolver_;
  std::optional<tcp::socket> socket_;
  std::optional<ChannelSecurity> channel_security_;  // io thread: this attempt's TLS, if any
  bool tls_ = false;                                 // io thread: the connection is TLS
  std::uint64_t attempt_ = 0;
  std::uint64_t generation_ = 0;
  bool handshake_done_ = false;
  bool closing_ = false;
  std::string refusal_;  // the agent's ERROR text when it refused the handshake
  std::chrono::milliseconds retry_delay_{options_.reconnect_delay_min};

  mutable std::mutex mutex_;  // guards everything below
  std::condition_variable state_changed_;
  State state_ = State::Idle;
  bool retry_pending_ = false;
  std::string last_error_ = "not connected";
  std::shared_ptr<transport::AsioConnection> conn_;
  std::uint32_t last_id_ = 0;
  std::uint32_t hello_id_ = 0;
  std::uint32_t list_id_ = 0;
  std::uint32_t capabilities_ = 0;
  std::vector<wire::DeviceInfo> devices_;
  std::unordered_map<std::uint32_t,
                     std::shared_ptr<std::promise<Expected<std::uint32_t, std::int32_t>>>>
      pending_;
  UrbTable urbs_;  // every URB in flight, from submission to completion
  std::shared_ptr<transport::AsioConnection> corked_;  // the connection cork() applied to
  bool watchdog_armed_ = false;  // the watchdog looks at the URBs' deadlines every 100 ms
  // Handles whose link could not tell what the device did (see arm_watchdog); per connection.
  std::unordered_set<std::uint32_t> lost_handles_;

  std::thread thread_;  // last: starts after everything above exists

  friend class AgentClient;
};

AgentClient::AgentClient(ClientOptions options, ClientListener* listener)
    : options_(std::move(options)) {
  impl_ = std::make_unique<Impl>(options_, listener);
}

AgentClient::~AgentClient() = default;

std::optional<std::string> AgentClient::ensure_connected() { return impl_->ensure_connected(); }

bool AgentClient::is_connected() const {
  std::lock_guard lock(impl_->mutex_);
  return impl_->state_ == Impl::State::Ready;
}

std::vector<wire::DeviceInfo> AgentClient::devices() const {
  std::lock_guard lock(impl_->mutex_);
  return impl_->devices_;
}

std::uint32_t AgentClient::agent_capabilities() const {
  std::lock_guard lock(impl_->mutex_);
  return impl_->capabilities_;
}

Expected<std::uint32_t, std::int32_t> AgentClient::request(wire::Message request) {
  return impl_->request(std::move(request));
}

Expected<std::uint32_t, std::int32_t> AgentClient::submit(wire::UrbSubmit submit,
                                                          std::span<std::uint8_t> in,
                                                          const void* owner, UrbDone done) {
  return impl_->submit(std::move(submit), in, owner, std::move(done));
}

bool AgentClient::cancel(const void* owner) { return impl_->cancel(owner); }

void AgentClient::forget(const void* owner) { impl_->forget(owner); }

bool AgentClient::in_flight(const void* owner) const {
  std::lock_guard lock(impl_->mutex_);
  return impl_->urbs_.find(owner).has_value();
}

transport::AsioConnection::Loan AgentClient::lend_stream() {
  auto conn = impl_->ready_connection();
  return conn ? conn->lend() : transport::AsioConnection::Loan{};
}

void AgentClient::cork() {
  std::lock_guard lock(impl_->mutex_);
  impl_->corked_ = impl_->conn_;
  if (impl_->corked_) impl_->corked_->stream().cork();
}

void AgentClient::uncork() {
  std::shared_ptr<transport::AsioConnection> conn;
  {
    std::lock_guard lock(impl_->mutex_);
    conn = std::move(impl_->corked_);
  }
  if (conn) conn->stream().uncork();
}

int AgentClient::socket_fd() const {
  std::lock_guard lock(impl_->mutex_);
  return impl_->conn_ ? impl_->conn_->stream().pollable_fd() : -1;
}

}  // namespace usbnet::client
