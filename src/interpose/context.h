// The shim's libusb_context: the real library's context (for local devices), the agents (for
// remote ones) and the remote devices they offer (remote_registry.h), tied to the context's
// event loop (event_loop.h) and hotplug callbacks (hotplug.h).
#pragma once

#include <libusb.h>
#include <unistd.h>

#include <memory>
#include <mutex>
#include <vector>

#include "interpose/event_loop.h"
#include "interpose/hotplug.h"
#include "interpose/remote_registry.h"
#include "usbnet/messages.h"

namespace usbnet::interpose {

class AgentLink;
class RemoteDevice;

class Context final : private EventSources {
 public:
  // `real_context` may be null: the real library could not be initialized, and only remote
  // devices are available.
  explicit Context(libusb_context* real_context);
  ~Context() override;
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  static Context* from(libusb_context* ctx);  // nullptr if not ours
  libusb_context* as_libusb() { return reinterpret_cast<libusb_context*>(this); }
  libusb_context* real_context() const { return real_; }
  EventLoop& events() { return events_; }
  Hotplug& hotplug() { return hotplug_; }

  // Connects to the agents (first call: creates the links; bounded wait) and returns the
  // attached remote devices the configuration selects, each with a reference for the caller.
  std::vector<RemoteDevice*> remote_devices();
  // The attached hub `device` hangs from (no reference added, as libusb_get_parent), or
  // nullptr: a root hub, or its hub left.
  libusb_device* parent_of(const RemoteDevice& device);

  // Called on agent threads.
  // `announce`: report the devices as hotplug arrivals (not for the first connection).
  // `socket_fd` joins the descriptors the program's event loop polls.
  void agent_connected(AgentLink& link, const std::vector<wire::DeviceInfo>& devices, bool announce,
                       int socket_fd);
  void agent_device_arrived(AgentLink& link, const wire::DeviceInfo& info);
  void agent_device_left(AgentLink& link, std::uint32_t device_id);
  void agent_lost(AgentLink& link, int socket_fd);

 private:
  // EventSources
  void agents(std::vector<std::shared_ptr<AgentLink>>& into) override;
  void run_hotplug(RemoteDevice& device, libusb_hotplug_event event) override;

  void start_links();
  void attach_device(AgentLink& link, const wire::DeviceInfo& info, bool announce);
  void detached(RemoteDevice* device);

  libusb_context* real_;
  const pid_t pid_;

  // Agents and their devices.
  std::mutex links_mutex_;
  bool links_started_ = false;
  std::vector<std::shared_ptr<AgentLink>> links_;
  std::mutex devices_mutex_;
  RemoteRegistry<RemoteDevice*> registry_;  // each attached device holds a reference

  EventLoop events_;
  Hotplug hotplug_;
};

}  // namespace usbnet::interpose
