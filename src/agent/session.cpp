#include "agent/session.h"

#include <algorithm>
#include <cstring>

#include "agent/completion.h"
#include "agent/request_access.h"
#include "common/log.h"
#include "common/topology.h"

namespace usbnet::agent {

using namespace wire::error_code;
using wire::UrbStatus;

Session::Session(DeviceRegistry& registry, SessionOptions options,
                 std::shared_ptr<const ClientIdentity> identity)
    : registry_(registry),
      options_(std::move(options)),
      identity_(std::move(identity)),
      budget_(options_.limits) {}

Session::~Session() { log::debug("{}: session ended", peer_); }

void Session::attach(std::shared_ptr<transport::FramedStream> connection) {
  connection_ = std::move(connection);
  peer_ = connection_->peer_name();
  budget_.on_unthrottled([stream = std::weak_ptr<transport::FramedStream>(connection_)] {
    if (auto s = stream.lock()) s->input_wanted();
  });
}

// ---- dispatching messages ------------------------------------------------------------------

void Session::on_message(wire::Message&& message) {
  if (closed_ || revoked_) return;  // (a revoked client is being disconnected)
  if (!hello_done_ && !std::holds_alternative<wire::Hello>(message)) {
    return protocol_violation(
        fmt::format("{} before HELLO", wire::message_type_name(wire::type_of(message))));
  }
  std::visit([this](auto& m) { handle(m); }, message);
}

// Large OUT payloads are read straight into the transfer's buffer.
std::span<std::uint8_t> Session::payload_destination(const wire::Message& head,
                                                     std::size_t length) {
  if (closed_ || !hello_done_) return {};
  if (const auto* m = std::get_if<wire::UrbSubmit>(&head)) {
    if (m->is_in() || length > m->data_len || urbs_.contains(m->trans_id) ||
        assembler_.expecting(m->trans_id) || budget_.refuse_urb(urbs_.size(), m->data_len)) {
      return {};
    }
    landing_trans_id_ = m->trans_id;
    landing_.resize(m->data_len);
    return std::span<std::uint8_t>(landing_).first(length);
  }
  if (const auto* piece = std::get_if<wire::UrbData>(&head)) {
    auto it = urbs_.find(piece->trans_id);
    if (it == urbs_.end() || !assembler_.expecting(piece->trans_id)) return {};
    TransferBuffer& buffer = it->second.transfer->buffer;
    if (piece->offset + length > buffer.size()) return {};
    return std::span<std::uint8_t>(buffer).subspan(piece->offset, length);
  }
  return {};
}

template <typename Other>
void Session::handle(Other& m) {
  // Replies, completions, lists and events travel from the agent to clients, never back.
  protocol_violation(
      fmt::format("unexpected {} from a client", wire::message_type_name(wire::type_of(m))));
}

// Protocol faults of every connection share one limiter (io thread only): a flood of bad
// connections makes one warning per interval, the others go to the debug level.
namespace {
log::Limiter& protocol_fault_log() {
  static log::Limiter limiter;
  return limiter;
}

// Runs `step(id, done)` for each id, and `then` once each step has called its `done` (at once
// when there are none).
template <typename Step>
void each_then(const std::vector<std::uint32_t>& ids, Step step, std::function<void()> then) {
  if (ids.empty()) return then();
  auto remaining = std::make_shared<std::size_t>(ids.size());
  for (std::uint32_t id : ids) {
    step(id, [remaining, then] {
      if (--*remaining == 0) then();
    });
  }
}
}  // namespace

// Reported once, by on_closed.
void Session::protocol_violation(const std::string& what) {
  connection_->send(wire::Error{0, kIo, "protocol error: " + what});
  connection_->close("protocol violation: " + what);
}

void Session::reply(std::uint32_t id, std::int32_t result, std::uint32_t value) {
  if (result == 0) {
    connection_->send(wire::Reply{id, value});
  } else {
    connection_->send(wire::Error{id, wire::is_known_error_code(result) ? result : kOther,
                                  std::string(wire::error_code_name(result))});
  }
}

void Session::handle(wire::Hello& m) {
  if (hello_done_) return protocol_violation("a second HELLO");
  wire::Bytes answer_auth;
  if (m.auth_method == wire::AuthMethod::Pair) {
    auto proof = pair(m);
    if (!proof) return;
    answer_auth = std::move(*proof);
  } else if (m.auth_method != wire::AuthMethod::None) {
    // Accepting credentials the agent does not check would let the client believe they were.
    log::warn(
        "{}: refused: HELLO offers authentication method {}, which this agent does not "
        "check",
        peer_, static_cast<unsigned>(m.auth_method));
    return refuse_hello(
        kAccess,
        fmt::format("authentication method {} is not supported by this agent, which checks no "
                    "credentials: connect with auth_method 0 (none)",
                    static_cast<unsigned>(m.auth_method)),
        "unsupported authentication method");
  } else if (identity_->pairing_only) {
    // Let in by the handshake only to pair: nothing else.
    log::warn("{}: refused: client key {} is not authorized and did not pair", peer_,
              identity_->fingerprint);
    return refuse_hello(kAccess,
                        fmt::format("this agent does not know the client key {}: pair with "
                                    "`usbnet pair HOST:PORT --code CODE` (a code from "
                                    "`usbnet-agent pair`), or have it added to authorized_clients",
                                    identity_->fingerprint),
                        "client key not authorized");
  }
  // Introduced: frames up to the protocol's cap, full-size reads.
  connection_->admit();
  connection_->set_peer_heartbeat(std::chrono::milliseconds(m.heartbeat_ms));
  connection_->send(
      wire::Hello{m.id, wire::kProtocolVersion, options_.capabilities, options_.heartbeat_ms,
                  answer_auth.empty() ? wire::AuthMethod::None : wire::AuthMethod::Pair,
                  std::move(answer_auth), options_.agent_name});
  hello_done_ = true;
  // The audit trail: who, from where, with which key (then what it opens, and when it leaves).
  log::info("{}: client connected ({}), {}", peer_, m.name.empty() ? "unnamed" : m.name,
            m.auth_method == wire::AuthMethod::Pair
                ? "TLS, key " + identity_->fingerprint + " (paired just now)"
                : identity_->describe());
  if (options_.policy && options_.policy->restricts()) {
    rights_ = options_.policy->rights_for(policy_client());
    if (rights_.nothing()) {
      log::info("{}: no [[allow]] table of {} names this client: it sees no device", peer_,
                options_.policy_origin);
    } else {
      log::info("{}: may use {} ([[allow]] of {})", peer_, rights_.describe(),
                options_.policy_origin);
    }
  }
  shown_ = visible_devices();
}

PolicyClient Session::policy_client() const {
  PolicyClient client;
  client.tls = identity_->tls;
  client.fingerprint = identity_->fingerprint;
  client.name = name_on_reload_      ? *name_on_reload_
                : paired_as_.empty() ? identity_->name
                                     : paired_as_;
  return client;
}

std::set<std::uint32_t> Session::visible_devices() const {
  std::set<std::uint32_t> visible;
  const auto& devices = registry_.devices();
  for (const auto& [id, device] : devices) {
    if (visible.contains(id) || !rights_.may_use(device.info)) continue;
    // The device, and the hubs above it (topology).
    for (auto at = devices.find(id); at != devices.end() && visible.insert(at->first).second;
         at = devices.find(at->second.info.parent_id)) {
    }
  }
  return visible;
}

void Session::show(std::uint32_t device_id) {
  std::vector<const wire::DeviceInfo*> chain;  // the device, then its hidden hubs upwards
  for (const ExportedDevice* d = registry_.find(device_id); d && !shown_.contains(d->id);
       d = registry_.find(d->info.parent_id)) {
    chain.push_back(&d->info);
  }
  for (auto it = chain.rbegin(); it != chain.rend(); ++it) {
    shown_.insert((*it)->device_id);
    connection_->send(wire::DeviceArrived{**it});
  }
}

std::optional<wire::Bytes> Session::pair(const wire::Hello& m) {
  if (!identity_->tls || !identity_->key || !options_.pairing) {
    log::warn("{}: pairing refused: not a TLS connection with an Ed25519 key", peer_);
    refuse_hello(kAccess,
                 "pairing needs TLS with the client's Ed25519 key (usbnet pair makes that "
                 "connection)",
                 "pairing without TLS");
    return std::nullopt;
  }
  const std::string comment = "paired-" + peer_.substr(0, peer_.rfind(':'));
  auto outcome = options_.pairing->attempt(*identity_->key, m.auth, comment);
  if (const auto* refused = std::get_if<PairingWindow::Refused>(&outcome)) {
    log::warn("{}: pairing refused for key {}: {}", peer_, identity_->fingerprint, refused->text);
    refuse_hello(refused->code, refused->text, "pairing refused");
    return std::nullopt;
  }
  const auto& proof = std::get<PairingWindow::Paired>(outcome).agent_proof;
  paired_as_ = comment;
  log::info("{}: paired: key {} added to authorized_clients", peer_, identity_->fingerprint);
  return wire::Bytes(proof.begin(), proof.end());
}

void Session::refuse_hello(std::int32_t code, const std::string& text, const std::string& why) {
  connection_->send(wire::Error{0, code, text});
  connection_->close(why);
}

void Session::handle(wire::ListDevices& m) {
  // The largest answer there is, to the smallest request: not while the client leaves its
  // answers unread.
  if (connection_->queued_bytes() > options_.limits.max_send_queue) {
    connection_->send(
        wire::Error{m.id, kBusy,
                    "the agent's answers to this client wait for it to read them "
                    "(--max-send-queue): read them before asking for the list again"});
    return;
  }
  std::vector<wire::DeviceInfo> shown;
  for (const auto& [id, device] : registry_.devices()) {
    if (shown_.contains(id)) shown.push_back(device.info);
  }
  connection_->send(wire::DeviceList{m.id, std::move(shown)});
}

void Session::device_arrived(const wire::DeviceInfo& info) {
  // A device the client may not use is not announced (nor the hubs above it, until one it may).
  if (hello_done_ && !closed_ && rights_.may_use(info)) show(info.device_id);
}

void Session::device_left(std::uint32_t device_id) {
  if (closed_) return;
  for (auto& [id, h] : handles_) {
    if (h.device_id != device_id) continue;
    h.gone = true;
    h.claimed.clear();
    // URBs still waiting for their payload never reached the device: they end here.
    refuse_waiting_on(id, UrbStatus::NoDevice);
  }
  if (shown_.erase(device_id) && hello_done_) connection_->send(wire::DeviceLeft{device_id});
}

// ---- reloading the policy ------------------------------------------------------------------

void Session::reload(std::shared_ptr<const DevicePolicy> policy,
                     const security::AuthorizedClients* authorized) {
  if (closed_ || revoked_) return;
  options_.policy = std::move(policy);
  // A key let in only to pair is judged at its HELLO.
  const bool waiting_to_pair = identity_->pairing_only && !hello_done_;
  if (authorized && identity_->tls && identity_->key && !identity_->ca_issued && !waiting_to_pair) {
    const security::TrustedKey* line = authorized->find(*identity_->key);
    if (!line) {
      return revoke(
          fmt::format("key {} is no longer in authorized_clients", identity_->fingerprint));
    }
    name_on_reload_ = line->key.comment;
  }
  if (!hello_done_) return;  // its rights are worked out at its HELLO
  DeviceRights rights = options_.policy && options_.policy->restricts()
                            ? options_.policy->rights_for(policy_client())
                            : DeviceRights::every_device();
  if (rights == rights_) return;  // unchanged: nothing to tell the client
  rights_ = std::move(rights);
  log::info("{}: device policy reloaded: the client may now use {}", peer_, rights_.describe());
  const std::set<std::uint32_t> visible = visible_devices();
  std::vector<std::uint32_t> hidden;
  for (std::uint32_t id : shown_) {
    if (!visible.contains(id)) hidden.push_back(id);
  }
  // The devices below a hub before the hub (ids grow from the root down).
  for (auto it = hidden.rbegin(); it != hidden.rend(); ++it) withdraw(*it);
  for (std::uint32_t id : visible) {
    if (!shown_.contains(id) && !leaving_.contains(id)) show(id);
  }
}

void Session::withdraw(std::uint32_t device_id) {
  shown_.erase(device_id);
  leaving_.insert(device_id);
  std::vector<std::uint32_t> mine;
  for (const auto& [id, h] : handles_) {
    // (A handle being closed releases its claims as it closes.)
    if (h.device_id == device_id && !h.withdrawn && !h.closing) mine.push_back(id);
  }
  auto told = [self = shared_from_this(), device_id] {
    self->leaving_.erase(device_id);
    if (self->closed_) return;
    self->connection_->send(wire::DeviceLeft{device_id});
    // Allowed again by a reload while its handles were closing: it comes back.
    const ExportedDevice* d = self->registry_.find(device_id);
    if (d && self->rights_.may_use(d->info)) self->show(device_id);
  };
  each_then(
      mine, [this](std::uint32_t id, std::function<void()> done) { withdraw_handle(id, done); },
      told);
}

void Session::withdraw_handle(std::uint32_t handle_id, std::function<void()> done) {
  OpenHandle& h = handles_.at(handle_id);
  h.gone = true;
  h.withdrawn = true;
  log::info("{}: handle {} on device {} closed: the device policy no longer gives it", peer_,
            handle_id, h.device_id);
  // URBs still waiting for their payload never reach the device; those on it are cancelled by
  // the close and complete with NO_DEVICE (complete()).
  refuse_waiting_on(handle_id, UrbStatus::NoDevice);
  h.handle->close([self = shared_from_this(), handle_id, done = std::move(done)] {
    auto it = self->handles_.find(handle_id);
    if (it != self->handles_.end()) {
      OpenHandle& closed = it->second;
      // Released once the backend has let go of the interfaces: another client can claim them
      // as soon as this one hears that the device left.
      for (std::uint8_t iface : closed.claimed) {
        self->registry_.sharing().release(closed.device_id, iface, {self.get(), handle_id});
      }
      closed.claimed.clear();
      closed.handle.reset();
      if (closed.closing) {
        auto answer = std::move(closed.closed_after_withdrawal);
        self->handles_.erase(it);
        if (answer) answer();
      }
    }
    done();
  });
}

void Session::revoke(const std::string& why) {
  revoked_ = true;
  log::info("{}: revoked: {}: disconnecting the client, releasing what it held", peer_, why);
  auto self = shared_from_this();
  auto finish = [self] {
    if (self->closed_) return;
    self->connection_->send(wire::Error{
        0, kAccess,
        "this client's key was revoked at the agent (no longer in authorized_clients)"});
    self->connection_->close_when_sent("key revoked", std::chrono::seconds(1));
  };
  close_open_handles(finish);
}

// ---- handles and device requests -----------------------------------------------------------

Session::OpenHandle* Session::find_handle(std::uint32_t handle_id) {
  auto it = handles_.find(handle_id);
  return it == handles_.end() ? nullptr : &it->second;
}

void Session::handle(wire::Open& m) {
  const ExportedDevice* device = registry_.find(m.device_id);
  // A device the policy hides is answered as one that does not exist: nothing tells them apart.
  if (!device || !shown_.contains(m.device_id)) return reply(m.id, kNoDevice);
  if (topology::is_hub(device->info)) {
    // Hubs are listed as topology only: the agent's kernel drives them, and a client that
    // claimed one (or detached its driver) would cut off every device below it.
    log::info("{}: refusing to open device {}: a hub", peer_, m.device_id);
    connection_->send(wire::Error{
        m.id, kAccess,
        fmt::format("device {} is a hub: the agent's kernel drives it, clients may not open it",
                    m.device_id)});
    return;
  }
  auto opened = device->device->open();
  if (!opened) return reply(m.id, opened.error());
  const std::uint32_t handle_id = next_handle_++;
  handles_.emplace(handle_id, OpenHandle{m.device_id, std::move(*opened)});
  const auto& d = device->info.device_descriptor;
  log::info("{}: opened device {} ({:02x}{:02x}:{:02x}{:02x}) as handle {}", peer_, m.device_id,
            d[9], d[8], d[11], d[10], handle_id);
  reply(m.id, 0, handle_id);
}

void Session::handle(wire::Close& m) {
  OpenHandle* h = find_handle(m.handle);
  if (!h || h->closing) return reply(m.id, kNotFound);
  close_handle(m.handle, [self = shared_from_this(), id = m.id] {
    if (!self->closed_) self->reply(id, 0);
  });
}

void Session::close_handle(std::uint32_t handle_id, std::function<void()> done) {
  OpenHandle& h = handles_.at(handle_id);
  h.closing = true;
  if (h.withdrawn) {
    // Its backend handle is closed already, or closing (then that close answers this one).
    if (h.handle) {
      h.closed_after_withdrawal = std::move(done);
      return;
    }
    handles_.erase(handle_id);
    return done();
  }
  std::vector<std::uint32_t> mine;
  for (const auto& [trans_id, urb] : urbs_) {
    if (urb.handle == handle_id) mine.push_back(trans_id);
  }
  for (std::uint32_t trans_id : mine) {
    auto it = urbs_.find(trans_id);
    if (it == urbs_.end()) continue;
    if (it->second.dispatched) {
      h.handle->cancel(it->second.transfer);
    } else if (!it->second.refused) {
      refuse_waiting(trans_id, UrbStatus::Cancelled);
    }
  }
  h.handle->close([self = shared_from_this(), handle_id, done = std::move(done)] {
    auto it = self->handles_.find(handle_id);
    if (it != self->handles_.end()) {
      for (std::uint8_t iface : it->second.claimed) {
        self->registry_.sharing().release(it->second.device_id, iface, {self.get(), handle_id});
      }
      self->handles_.erase(it);
    }
    done();
  });
}

template <typename Request>
requires requires(Request r) { r.handle; }
void Session::handle(Request& m) {
  OpenHandle* h = find_handle(m.handle);
  if (!h || h->closing) return reply(m.id, kNotFound);
  if (h->gone) return reply(m.id, kNoDevice);
  if constexpr (std::is_same_v<Request, wire::ReleaseInterface>) {
    if (!h->claimed.contains(m.interface_number)) return reply(m.id, kNotFound);
  }
  // (An allowed CLAIM_INTERFACE takes the claim here; device_request gives it back if the
  // device refuses.)
  if (auto refused = request_access(registry_, h->device_id, {this, m.handle}, m)) {
    return refuse(m.id, *refused);
  }
  device_request(m.id, m.handle, m);
}

void Session::refuse(std::uint32_t id, const Refusal& refusal) {
  if (const auto times = refusal_log_.due()) {
    log::info("{}: refused: {} ({} refusal{} in the last interval)", peer_, refusal.reason, times,
              times == 1 ? "" : "s");
  }
  connection_->send(wire::Error{id, refusal.code, refusal.reason});
}

void Session::device_request(std::uint32_t id, std::uint32_t handle_id,
                             const DeviceRequest& request) {
  OpenHandle& h = handles_.at(handle_id);
  h.handle->request(request, [self = shared_from_this(), id, handle_id, request](
                                 std::int32_t result, std::uint32_t value) {
    OpenHandle* h = self->find_handle(handle_id);
    if (h) {
      DeviceSharing& sharing = self->registry_.sharing();
      const Claimant me{self.get(), handle_id};
      if (const auto* claim = std::get_if<wire::ClaimInterface>(&request)) {
        if (result == 0) {
          h->claimed.insert(claim->interface_number);
        } else {
          sharing.release(h->device_id, claim->interface_number, me);
        }
      } else if (const auto* release = std::get_if<wire::ReleaseInterface>(&request)) {
        if (result == 0) {
          h->claimed.erase(release->interface_number);
          sharing.release(h->device_id, release->interface_number, me);
        }
      } else if (const auto* config = std::get_if<wire::SetConfiguration>(&request)) {
        if (result == 0) {
          sharing.configuration_selected(
              h->device_id, static_cast<std::uint8_t>(std::max(0, config->configuration)));
        }
      }
    }
    if (!self->closed_) self->reply(id, result, value);
  });
}

// ---- URBs ----------------------------------------------------------------------------------

void Session::handle(wire::UrbSubmit& m) {
  TransferBuffer landed;  // where payload_destination had the payload read, if it did
  if (landing_trans_id_ == m.trans_id) landed = std::move(landing_);
  landing_trans_id_ = 0;
  landing_ = {};
  if (urbs_.contains(m.trans_id) || assembler_.expecting(m.trans_id)) {
    return protocol_violation(fmt::format("trans_id {} is already in flight", m.trans_id));
  }
  auto expecting = assembler_.begin(m.trans_id, m.is_in() ? 0 : m.data_len,
                                    static_cast<std::uint32_t>(m.payload.size()));
  if (!expecting) return protocol_violation(std::string(wire::wire_error_name(expecting.error())));

  auto transfer = std::make_shared<Transfer>();
  transfer->trans_id = m.trans_id;
  transfer->type = m.type;
  transfer->endpoint = m.endpoint;
  transfer->flags = m.flags;
  transfer->setup = m.setup;
  transfer->timeout_ms = m.timeout_ms;
  transfer->iso_lengths = m.iso_lengths;

  const EndpointKey key{m.handle, m.type == wire::UrbType::Control ? std::uint8_t{0} : m.endpoint};
  const std::size_t cost = m.data_len;
  Urb urb{transfer, m.handle, key, cost};
  urb.received = static_cast<std::uint32_t>(m.payload.size());

  OpenHandle* h = find_handle(m.handle);
  std::optional<UrbStatus> refused;
  if (!h || h->closing) {
    refused = UrbStatus::Error;
  } else if (h->gone) {
    refused = UrbStatus::NoDevice;
  } else if (auto verdict = urb_access(registry_, h->device_id, {this, m.handle}, m)) {
    if (const auto times = refusal_log_.due()) {
      log::info("{}: URB on endpoint 0x{:02x} refused: {} ({} refusal{} in the last interval)",
                peer_, m.endpoint, verdict->reason, times, times == 1 ? "" : "s");
    }
    refused = verdict->code == kNoDevice ? UrbStatus::NoDevice : UrbStatus::Error;
  } else if (auto over = budget_.refuse_urb(urbs_.size(), cost)) {
    if (const auto times = limit_log_.due()) {
      log::warn("{}: URB refused: {} ({} refused in the last interval)", peer_, *over, times);
    }
    refused = UrbStatus::Error;
  }
  if (refused) {
    // Its remaining payload pieces are still coming and are consumed, unread, by handle(UrbData).
    transfer->status = *refused;
    urb.cost = 0;
    urb.refused = true;
    urbs_.emplace(m.trans_id, std::move(urb));
    if (!*expecting) complete(m.trans_id, transfer);
    return;
  }

  if (!landed.empty() && m.payload.data() == landed.data()) {
    transfer->buffer = std::move(landed);  // the payload was read into it
  } else {
    transfer->buffer.resize(m.data_len);
    std::copy(m.payload.begin(), m.payload.end(), transfer->buffer.begin());
  }
  budget_.reserve(cost);
  urbs_.emplace(m.trans_id, std::move(urb));
  if (!*expecting && !waiting_.contains(key)) {
    // Whole, and nothing ahead of it on its endpoint: straight to the device.
    return dispatch(m.trans_id);
  }
  waiting_[key].push_back(m.trans_id);
  pump(key);
}

void Session::handle(wire::UrbData& piece) {
  auto whole = assembler_.accept(piece);
  if (!whole) return protocol_violation(std::string(wire::wire_error_name(whole.error())));
  Urb& urb = urbs_.at(piece.trans_id);
  if (!urb.transfer->buffer.empty()) {
    std::uint8_t* to = urb.transfer->buffer.data() + piece.offset;
    if (to != piece.payload.data()) {  // else it was read there
      std::copy(piece.payload.begin(), piece.payload.end(), to);
    }
  }
  urb.received += static_cast<std::uint32_t>(piece.payload.size());
  if (!*whole) return;
  if (urb.refused) {
    // Its payload is consumed; now it can be answered.
    complete(piece.trans_id, urb.transfer);
  } else {
    pump(urb.key);
  }
}

void Session::handle(wire::UrbCancel& m) {
  auto it = urbs_.find(m.trans_id);
  if (it == urbs_.end()) return;  // already completed: the completion is on its way
  Urb& urb = it->second;
  if (urb.dispatched) {
    OpenHandle* h = find_handle(urb.handle);
    if (h && h->handle) h->handle->cancel(urb.transfer);
    return;
  }
  // Not on the device yet (its payload was still arriving, or it was refused): it ends here.
  const EndpointKey key = urb.key;
  const bool refused = urb.refused;
  assembler_.forget(m.trans_id);
  if (refused) {
    complete(m.trans_id, urb.transfer);
  } else {
    fail_urb(m.trans_id, UrbStatus::Cancelled);
    pump(key);
  }
}

void Session::pump(EndpointKey key) {
  auto it = waiting_.find(key);
  if (it == waiting_.end()) return;
  std::deque<std::uint32_t>& queue = it->second;
  while (!queue.empty()) {
    const std::uint32_t trans_id = queue.front();
    if (assembler_.expecting(trans_id)) break;  // its payload is still arriving
    queue.pop_front();
    dispatch(trans_id);
  }
  if (queue.empty()) waiting_.erase(key);
}

void Session::dispatch(std::uint32_t trans_id) {
  Urb& urb = urbs_.at(trans_id);
  urb.dispatched = true;
  OpenHandle* h = find_handle(urb.handle);
  if (!h || h->gone) return fail_urb(trans_id, UrbStatus::NoDevice);
  if (options_.capture) {
    if (const ExportedDevice* d = registry_.find(h->device_id)) {
      options_.capture->submitted(d->info, *urb.transfer);
    }
  }
  // The backend may complete it before submit() returns. (The callback holds only the session:
  // small enough for std::function to keep without an allocation.)
  h->handle->submit(urb.transfer, [self = shared_from_this()](const TransferPtr& t) {
    self->complete(t->trans_id, t);
  });
}

// A URB that has not reached the device will not: it is answered with `status` as soon as the
// rest of its payload (which the client may still be sending) has been consumed.
void Session::refuse_waiting(std::uint32_t trans_id, UrbStatus status) {
  Urb& urb = urbs_.at(trans_id);
  auto queue = waiting_.find(urb.key);
  if (queue != waiting_.end()) {
    std::erase(queue->second, trans_id);
    if (queue->second.empty()) waiting_.erase(queue);
  }
  urb.refused = true;
  urb.transfer->status = status;
  // The buffer stays until the URB is answered: the rest of its payload may be being read
  // into it.
  budget_.unreserve(urb.cost);
  urb.cost = 0;
  if (!assembler_.expecting(trans_id)) fail_urb(trans_id, status);
}

void Session::refuse_waiting_on(std::uint32_t handle_id, UrbStatus status) {
  std::vector<std::uint32_t> waiting;
  for (const auto& [trans_id, urb] : urbs_) {
    if (urb.handle == handle_id && !urb.dispatched && !urb.refused) waiting.push_back(trans_id);
  }
  for (std::uint32_t trans_id : waiting) refuse_waiting(trans_id, status);
}

void Session::fail_urb(std::uint32_t trans_id, UrbStatus status) {
  auto it = urbs_.find(trans_id);
  if (it == urbs_.end()) return;
  const TransferPtr& t = it->second.transfer;
  t->status = status;
  t->actual_length = 0;
  t->iso_results.assign(t->iso_lengths.size(), wire::IsoPacketResult{status, 0});
  if (!it->second.dispatched) {
    auto queue = waiting_.find(it->second.key);
    if (queue != waiting_.end()) {
      std::erase(queue->second, trans_id);
      if (queue->second.empty()) waiting_.erase(queue);
    }
  }
  complete(trans_id, t);
}

void Session::complete(std::uint32_t trans_id, TransferPtr t) {
  auto it = urbs_.find(trans_id);
  if (it == urbs_.end()) return;
  const OpenHandle* h = find_handle(it->second.handle);
  if (h && h->withdrawn && t->status == UrbStatus::Cancelled) {
    // Cancelled by the withdrawal: for the client, the device went away.
    t->status = UrbStatus::NoDevice;
    for (auto& packet : t->iso_results) packet.status = UrbStatus::NoDevice;
  }
  if (options_.capture) {
    const ExportedDevice* d = h ? registry_.find(h->device_id) : nullptr;
    options_.capture->completed(*t, d ? &d->info : nullptr);
  }
  // A standard SET_CONFIGURATION sent as a control transfer selects it as the request does.
  if (h && t->type == wire::UrbType::Control && t->status == UrbStatus::Completed &&
      t->setup[0] == 0x00 && t->setup[1] == 9) {
    registry_.sharing().configuration_selected(h->device_id, t->setup[2]);
  }
  const std::size_t cost = it->second.cost;  // charged until the completion is written
  urbs_.erase(it);

  Completion done = completion_of(t, peer_);
  std::shared_ptr<const void> keepalive = budget_.until_sent(std::move(done.keepalive), cost);
  if (!closed_) connection_->send_urb(std::move(done.message), std::move(keepalive));
}

bool Session::wants_input() const {
  if (closed_ || !connection_) return true;
  const auto throttled = budget_.throttle(connection_->queued_bytes());
  if (throttled && !reading_paused_) {
    if (const auto times = backpressure_log_.due()) {
      log::warn("{}: not reading the client's requests: {} ({} pause{} in the last interval)",
                peer_, *throttled, times, times == 1 ? "" : "s");
    }
  }
  reading_paused_ = throttled.has_value();
  return !reading_paused_;
}

bool Session::hello_deadline_passed(std::chrono::milliseconds timeout) {
  if (hello_done_ || closed_) return false;
  connection_->send(wire::Error{
      0, kTimeout,
      fmt::format("no HELLO within {} ms of connecting (--hello-timeout)", timeout.count())});
  connection_->close(fmt::format("no HELLO within {} ms", timeout.count()));
  return true;
}

// ---- the end of the connection -------------------------------------------------------------

void Session::shut_down() {
  if (closed_) return;
  close_open_handles([self = shared_from_this()] {
    self->connection_->close_when_sent("agent shutting down", std::chrono::seconds(1));
  });
}

void Session::close_open_handles(std::function<void()> then) {
  std::vector<std::uint32_t> open;
  for (const auto& [id, h] : handles_) {
    if (!h.closing) open.push_back(id);
  }
  each_then(
      open, [this](std::uint32_t id, std::function<void()> done) { close_handle(id, done); },
      std::move(then));
}

void Session::on_closed(const std::string& reason) {
  if (closed_) return;
  closed_ = true;
  if (reason.starts_with("protocol error") || reason.starts_with("protocol violation")) {
    const auto times = protocol_fault_log().due();
    log::at(times ? log::Level::Warn : log::Level::Debug,
            "{}: closing the connection after a {}; releasing what the client held ({} "
            "protocol fault{} in the last interval)",
            peer_, reason, std::max<std::uint64_t>(times, 1), times > 1 ? "s" : "");
  } else if (!hello_done_) {
    log::info("{}: client disconnected before its HELLO ({})", peer_, reason);
  } else {
    log::info("{}: client disconnected ({}); releasing what the client held", peer_, reason);
  }
  assembler_ = wire::PieceAssembler{};
  std::vector<std::uint32_t> open;
  for (const auto& [id, h] : handles_) {
    if (!h.closing) open.push_back(id);
  }
  for (std::uint32_t id : open) close_handle(id, [] {});
}

}  // namespace usbnet::agent
