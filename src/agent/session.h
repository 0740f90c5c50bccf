// One client connection to the agent: the handshake, its open handles, its claims and its URBs.
//
// Everything runs on the io thread. URBs are run by the device backends asynchronously; OUT
// URBs whose payload is still arriving in pieces hold back the later URBs of their endpoint, so
// a device sees each endpoint's URBs in the order the client sent them. When the connection
// ends, the session cancels its URBs, closes its handles and releases its interfaces; it lives
// until the last backend callback has run.
#pragma once

#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <unordered_map>

#include "agent/client_budget.h"
#include "agent/client_identity.h"
#include "agent/connection_quota.h"
#include "agent/device.h"
#include "agent/device_policy.h"
#include "agent/device_sharing.h"
#include "agent/limits.h"
#include "agent/pairing_window.h"
#include "agent/registry.h"
#include "agent/urb_capture.h"
#include "common/log_limiter.h"
#include "security/trust_files.h"
#include "transport/framed_stream.h"
#include "usbnet/pieces.h"

namespace usbnet::agent {

struct SessionOptions {
  std::string agent_name = "usbnet-agent";
  std::uint32_t heartbeat_ms = 5000;
  std::uint32_t capabilities = wire::kCapIso | wire::kCapHotplug | wire::kCapKernelDriver;
  // What the client may make the agent hold (limits.h).
  ClientLimits limits;
  // --pcap: where the URBs and their completions are recorded (null: nowhere).
  std::shared_ptr<UrbCapture> capture;
  // Pairing with a one-time code (null: this agent has no keys, and pairing is refused).
  std::shared_ptr<PairingWindow> pairing;
  // Which devices the client may see and use ([[allow]], device_policy.h); null: every one.
  std::shared_ptr<const DevicePolicy> policy;
  // Where the policy comes from, for log lines (the configuration file).
  std::string policy_origin;
};

class Session : public transport::StreamHandler, public std::enable_shared_from_this<Session> {
 public:
  // `identity`: who the client is, filled in by the connection's handshake (audit lines).
  Session(DeviceRegistry& registry, SessionOptions options,
          std::shared_ptr<const ClientIdentity> identity = std::make_shared<ClientIdentity>());
  ~Session() override;

  void attach(std::shared_ptr<transport::FramedStream> connection);

  void on_message(wire::Message&& message) override;
  std::span<std::uint8_t> payload_destination(const wire::Message& head,
                                              std::size_t length) override;
  void on_closed(const std::string& reason) override;
  // Backpressure: false while the answers waiting to be written to the client are over
  // limits.max_send_queue (the driver reads again once the client has read some).
  bool wants_input() const override;

  // The connection's place in the server's count, held as long as the session lives.
  void hold(ConnectionQuota::Ticket ticket) { ticket_ = std::move(ticket); }
  // The HELLO deadline passed: closes the connection if it has not completed its HELLO (true
  // then).
  bool hello_deadline_passed(std::chrono::milliseconds timeout);

  // The agent is shutting down: cancels the client's transfers, closes its handles, tells it
  // (the completions go out), then closes the connection.
  void shut_down();

  // From the registry.
  void device_arrived(const wire::DeviceInfo& info);
  void device_left(std::uint32_t device_id);

  // SIGHUP: the device policy and authorized_clients read again (`authorized` null: the file
  // could not be read, and nobody is revoked for it). A TLS client whose key is no longer
  // authorized (and whose certificate --client-ca did not issue) is disconnected once what it
  // held is released; one whose rights changed loses the devices it may no longer use (as if
  // they had left) and is told of those it may now use.
  void reload(std::shared_ptr<const DevicePolicy> policy,
              const security::AuthorizedClients* authorized);

  const std::string& peer() const { return peer_; }
  // What the client may use (every device until its HELLO is accepted: it sees nothing before).
  const DeviceRights& rights() const { return rights_; }

 private:
  struct OpenHandle {
    std::uint32_t device_id = 0;
    std::unique_ptr<DeviceHandle> handle;
    std::set<std::uint8_t> claimed = {};
    bool gone = false;     // the device left: requests answer NO_DEVICE
    bool closing = false;  // CLOSE in progress
    // The policy took the device away: the backend handle is closing (then null), and a CLOSE
    // that comes meanwhile is answered when it has closed.
    bool withdrawn = false;
    std::function<void()> closed_after_withdrawal = {};
  };
  using EndpointKey = std::pair<std::uint32_t, std::uint8_t>;  // handle, endpoint (0: control)
  struct Urb {
    TransferPtr transfer;
    std::uint32_t handle = 0;
    EndpointKey key;
    std::size_t cost = 0;        // bytes charged against limits.max_urb_memory
    std::uint32_t received = 0;  // OUT payload bytes so far
    bool dispatched = false;     // handed to the device
    bool refused = false;        // answered without reaching the device (status preset)
  };

  void handle(wire::Hello& m);
  // A HELLO with auth_method Pair: the agent's proof to send back, or nullopt (refused, closed).
  std::optional<wire::Bytes> pair(const wire::Hello& m);
  void refuse_hello(std::int32_t code, const std::string& text, const std::string& why);
  void handle(wire::ListDevices& m);
  void handle(wire::Open& m);
  void handle(wire::Close& m);
  void handle(wire::UrbSubmit& m);
  void handle(wire::UrbData& m);
  void handle(wire::UrbCancel& m);
  template <typename Request>
  requires requires(Request r) { r.handle; }
  void handle(Request& m);
  template <typename Other>
  void handle(Other& m);

  void device_request(std::uint32_t id, std::uint32_t handle_id, const DeviceRequest& request);
  void close_handle(std::uint32_t handle_id, std::function<void()> done);
  // Closes every handle not closing already; `then` once all are closed.
  void close_open_handles(std::function<void()> then);
  void pump(EndpointKey key);  // by value: dispatching may erase the URB it came from
  void dispatch(std::uint32_t trans_id);
  void complete(std::uint32_t trans_id, TransferPtr transfer);
  void fail_urb(std::uint32_t trans_id, wire::UrbStatus status);
  void refuse_waiting(std::uint32_t trans_id, wire::UrbStatus status);
  // Every URB of the handle that has not reached the device yet (its payload still arriving).
  void refuse_waiting_on(std::uint32_t handle_id, wire::UrbStatus status);
  void reply(std::uint32_t id, std::int32_t result, std::uint32_t value = 0);
  // A request the sharing rules refuse: ERROR with the reason (one log line per interval).
  void refuse(std::uint32_t id, const Refusal& refusal);
  void protocol_violation(const std::string& what);
  OpenHandle* find_handle(std::uint32_t handle_id);

  // The policy: who the client is to it, and the devices it is shown (those it may use and the
  // hubs above them).
  PolicyClient policy_client() const;
  std::set<std::uint32_t> visible_devices() const;
  // Shows the device (its hidden hubs first): DEVICE_ARRIVED for each.
  void show(std::uint32_t device_id);
  // Hides a device the client may no longer use: its handles on it end as on a device that
  // left (their claims released, their backend handles closed), then DEVICE_LEFT.
  void withdraw(std::uint32_t device_id);
  void withdraw_handle(std::uint32_t handle_id, std::function<void()> done);
  // The client's key was revoked: releases what it holds, then tells it and disconnects.
  void revoke(const std::string& why);

  DeviceRegistry& registry_;
  SessionOptions options_;
  std::shared_ptr<transport::FramedStream> connection_;
  std::shared_ptr<const ClientIdentity> identity_;
  std::string peer_;
  bool hello_done_ = false;
  bool closed_ = false;
  std::uint32_t next_handle_ = 1;
  std::map<std::uint32_t, OpenHandle> handles_;
  DeviceRights rights_ = DeviceRights::every_device();
  std::set<std::uint32_t> shown_;              // the device ids the client knows of
  std::string paired_as_;                      // the comment of the key line its pairing just added
  std::optional<std::string> name_on_reload_;  // its key line's comment as the last reload read it
  std::set<std::uint32_t> leaving_;            // withdrawn, DEVICE_LEFT not sent yet
  bool revoked_ = false;
  std::unordered_map<std::uint32_t, Urb> urbs_;
  std::map<EndpointKey, std::deque<std::uint32_t>> waiting_;  // not yet dispatched, in order
  wire::PieceAssembler assembler_;
  ClientBudget budget_;
  log::Limiter refusal_log_;  // sharing refusals
  log::Limiter limit_log_;    // URBs over the limits
  mutable log::Limiter backpressure_log_;
  mutable bool reading_paused_ = false;
  ConnectionQuota::Ticket ticket_;
  // The buffer a URB_SUBMIT's OUT payload is being read into, before the URB exists.
  std::uint32_t landing_trans_id_ = 0;
  TransferBuffer landing_;
};

}  // namespace usbnet::agent
