// One agent as seen by one context: its client connection, and the events it reports, passed
// on to the context. Created on the context's first need for remote devices (never by merely
// loading the shim or calling libusb_init).
#pragma once

#include <memory>
#include <mutex>

#include "client/agent_client.h"
#include "interpose/config.h"

namespace usbnet::interpose {

class Context;

class AgentLink : public client::ClientListener, public std::enable_shared_from_this<AgentLink> {
 public:
  AgentLink(Context& context, const transport::Endpoint& agent, int index, const Config& config);
  ~AgentLink() override;

  client::AgentClient& client() { return *client_; }
  int index() const { return index_; }
  const transport::Endpoint& agent() const { return agent_; }

  // Connects if needed (bounded by the connect timeout). The first failure is reported in one
  // warning line; later ones only at debug level, while reconnection goes on in the background.
  void ensure_connected();
  // The context is going away: no more calls into it.
  void detach();

  void on_connected(const std::vector<wire::DeviceInfo>& devices, int socket_fd) override;
  void on_device_arrived(const wire::DeviceInfo& device) override;
  void on_device_left(std::uint32_t device_id) override;
  void on_disconnected(const std::string& reason) override;

 private:
  template <typename Fn>
  void with_context(Fn&& fn);

  std::mutex mutex_;
  Context* context_;  // null once detached
  // Its own copy: the client's thread may report a loss while client_ is being destroyed.
  const transport::Endpoint agent_;
  int index_;
  bool warned_ = false;
  int socket_fd_ = -1;  // of the current connection, to report its removal after it closed
  bool tried_ = false;
  bool first_attempt_ = false;
  std::unique_ptr<client::AgentClient> client_;  // last: its thread may call the above
};

}  // namespace usbnet::interpose
