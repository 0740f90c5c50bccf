#include "interpose/context.h"

#include "common/log.h"
#include "common/topology.h"
#include "interpose/agent_link.h"
#include "interpose/config.h"
#include "interpose/fork_safety.h"
#include "interpose/objects.h"
#include "interpose/remote_device.h"

namespace usbnet::interpose {

Context::Context(libusb_context* real_context)
    : real_(real_context),
      pid_(::getpid()),
      registry_(config().devices),
      events_(real_context, *this),
      hotplug_(*this, real_context) {
  contexts().add(this);
}

Context::~Context() {
  contexts().remove(this);
  events_.lifeline()->cut();
  if (::getpid() != pid_) {
    // A fork child: the parent's agent threads do not exist here and the locks they use may
    // have been taken at the moment of the fork. Nothing of the remote side is touched.
    for (auto& link : links_) keep_forever(std::move(link));
    return;
  }
  std::vector<std::shared_ptr<AgentLink>> links;
  {
    std::lock_guard lock(links_mutex_);
    links.swap(links_);
  }
  for (auto& link : links) link->detach();
  {
    std::lock_guard lock(devices_mutex_);
    for (RemoteDevice* device : registry_.clear()) {
      device->mark_gone();
      device->unref();
    }
  }
  events_.discard_queue();
}

Context* Context::from(libusb_context* ctx) {
  return contexts().contains(ctx) ? reinterpret_cast<Context*>(ctx) : nullptr;
}

void Context::agents(std::vector<std::shared_ptr<AgentLink>>& into) {
  std::lock_guard lock(links_mutex_);
  into.insert(into.end(), links_.begin(), links_.end());
}

void Context::run_hotplug(RemoteDevice& device, libusb_hotplug_event event) {
  hotplug_.run(device, event);
}

void Context::start_links() {
  std::lock_guard lock(links_mutex_);
  if (links_started_) return;
  links_started_ = true;
  note_agent_use();
  const Config& c = config();
  for (std::size_t i = 0; i < c.agents.size(); ++i) {
    links_.push_back(std::make_shared<AgentLink>(*this, c.agents[i], static_cast<int>(i), c));
  }
}

std::vector<RemoteDevice*> Context::remote_devices() {
  if (!config().remote_enabled() || ::getpid() != pid_) return {};
  start_links();
  std::vector<std::shared_ptr<AgentLink>> links;
  {
    std::lock_guard lock(links_mutex_);
    links = links_;
  }
  for (auto& link : links) link->ensure_connected();
  std::vector<RemoteDevice*> devices;
  std::lock_guard lock(devices_mutex_);
  for (RemoteDevice* device : registry_.attached()) {
    if (!device->gone()) devices.push_back(device->ref());
  }
  return devices;
}

// A device USBNET_DEVICES selects is attached with the hubs above it, so that libusb_get_parent
// finds them (see remote_registry.h); arrivals are announced from the top down, as libusb
// reports them.
void Context::attach_device(AgentLink& link, const wire::DeviceInfo& info, bool announce) {
  std::vector<RemoteDevice*> added;
  {
    std::lock_guard lock(devices_mutex_);
    added =
        registry_.attach(link.index(), info, [&](const wire::DeviceInfo& record, std::uint8_t bus) {
          auto* device = new RemoteDevice(*this, link.shared_from_this(), record, bus);
          log::debug("remote {} {:04x}:{:04x} from {} is bus {} device {}",
                     topology::is_hub(record) ? "hub" : "device", topology::vendor_id(record),
                     topology::product_id(record), link.agent().to_string(), bus,
                     record.device_address);
          return device;
        });
  }
  if (!announce) return;
  for (RemoteDevice* device : added) {
    events_.post_hotplug(device->ref(), LIBUSB_HOTPLUG_EVENT_DEVICE_ARRIVED);
  }
}

libusb_device* Context::parent_of(const RemoteDevice& device) {
  std::lock_guard lock(devices_mutex_);
  const auto parent = registry_.parent_of(device.link().index(), device.info());
  if (!parent || (*parent)->gone()) return nullptr;
  return (*parent)->as_libusb();
}

void Context::detached(RemoteDevice* device) {
  device->mark_gone();
  // The context's reference passes to the event, released after the callbacks ran.
  events_.post_hotplug(device, LIBUSB_HOTPLUG_EVENT_DEVICE_LEFT);
}

void Context::agent_connected(AgentLink& link, const std::vector<wire::DeviceInfo>& devices,
                              bool announce, int socket_fd) {
  for (const auto& info : devices) attach_device(link, info, announce);
  if (socket_fd >= 0) events_.notify_pollfd(socket_fd, true);
}

void Context::agent_device_arrived(AgentLink& link, const wire::DeviceInfo& info) {
  attach_device(link, info, true);
}

void Context::agent_device_left(AgentLink& link, std::uint32_t device_id) {
  std::lock_guard lock(devices_mutex_);
  if (auto device = registry_.detach(link.index(), device_id)) detached(*device);
}

void Context::agent_lost(AgentLink& link, int socket_fd) {
  {
    std::lock_guard lock(devices_mutex_);
    for (RemoteDevice* device : registry_.agent_lost(link.index())) detached(device);
  }
  if (socket_fd >= 0) events_.notify_pollfd(socket_fd, false);
}

}  // namespace usbnet::interpose
