#include "interpose/agent_link.h"

#include "common/log.h"
#include "interpose/context.h"

namespace usbnet::interpose {

AgentLink::AgentLink(Context& context, const transport::Endpoint& agent, int index,
                     const Config& config)
    : context_(&context), agent_(agent), index_(index) {
  client::ClientOptions options;
  options.agent = agent;
  options.name = "libusbnet " USBNET_VERSION;
  options.connect_timeout = config.connect_timeout;
  options.heartbeat = config.heartbeat;
  options.dead_after = 3 * config.heartbeat;
  options.timeout_grace = config.timeout_grace;
  if (config.piece_size) options.piece_size = config.piece_size;
  options.security = client::ClientTrust::policy(
      std::make_shared<client::ClientTrust>(config.config_dir, config.insecure));
  client_ = std::make_unique<client::AgentClient>(options, this);
}

AgentLink::~AgentLink() { client_.reset(); }

void AgentLink::ensure_connected() {
  {
    std::lock_guard lock(mutex_);
    if (!tried_) first_attempt_ = true;
  }
  const auto error = client_->ensure_connected();
  std::lock_guard lock(mutex_);
  first_attempt_ = false;
  tried_ = true;
  if (error && !warned_) {
    warned_ = true;
    log::warn("cannot reach the agent at {}: {}; going on without its devices", agent().to_string(),
              *error);
  }
}

void AgentLink::detach() {
  std::lock_guard lock(mutex_);
  context_ = nullptr;
}

template <typename Fn>
void AgentLink::with_context(Fn&& fn) {
  std::lock_guard lock(mutex_);
  if (context_) fn(*context_);
}

void AgentLink::on_connected(const std::vector<wire::DeviceInfo>& devices, int socket_fd) {
  std::lock_guard lock(mutex_);
  if (warned_) log::warn("reached the agent at {}", agent().to_string());
  warned_ = false;
  socket_fd_ = socket_fd;
  // Devices found by the first attempt were there before the program looked: not arrivals.
  if (context_) context_->agent_connected(*this, devices, !first_attempt_, socket_fd_);
}

void AgentLink::on_device_arrived(const wire::DeviceInfo& device) {
  with_context([&](Context& c) { c.agent_device_arrived(*this, device); });
}

void AgentLink::on_device_left(std::uint32_t device_id) {
  with_context([&](Context& c) { c.agent_device_left(*this, device_id); });
}

void AgentLink::on_disconnected(const std::string& reason) {
  log::warn("lost the agent at {} ({}); its devices are gone", agent().to_string(), reason);
  std::lock_guard lock(mutex_);
  warned_ = true;
  if (context_) context_->agent_lost(*this, std::exchange(socket_fd_, -1));
}

}  // namespace usbnet::interpose
