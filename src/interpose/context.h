// The shim's libusb_context: the real library's context (for local devices), the agents (for
// remote ones), and an event loop that serves both.
//
// The event loop follows libusb's model: one thread at a time holds the event lock and handles
// events; others wait on the waiters' condition. Handling events means polling the real
// library's file descriptors together with the context's own wake-up eventfd, letting the real
// library handle its events, and running the callbacks of remote completions and remote
// hotplug events that the agent connections' threads have queued. So callbacks run only inside
// the program's event-handling calls, in that thread, whether the device is local or remote,
// and a program that polls libusb's file descriptors itself (get_pollfds) wakes up for remote
// completions too.
#pragma once

#include <libusb.h>
#include <poll.h>

#include <atomic>
#include <condition_variable>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "client/agent_client.h"
#include "client/urb_tracker.h"
#include "usbnet/messages.h"

namespace usbnet::interpose {

class AgentLink;
class RemoteDevice;

class Context {
 public:
  // `real_context` may be null: the real library could not be initialized, and only remote
  // devices are available.
  explicit Context(libusb_context* real_context);
  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  static Context* from(libusb_context* ctx);  // nullptr if not ours
  libusb_context* as_libusb() { return reinterpret_cast<libusb_context*>(this); }
  libusb_context* real_context() const { return real_; }

  // ---- remote devices ----
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

  // ---- events ----
  int try_lock_events();
  void lock_events();
  void unlock_events();
  int event_handling_ok() const { return 1; }
  int event_handler_active() const { return event_handler_active_.load() ? 1 : 0; }
  void interrupt_event_handler();
  void lock_event_waiters() { waiters_mutex_.lock(); }
  void unlock_event_waiters() { waiters_mutex_.unlock(); }
  int wait_for_event(const timeval* tv);
  int handle_events_timeout_completed(const timeval* tv, int* completed);
  int handle_events_locked(const timeval* tv);
  // True when the calling thread is inside this context's event handling (a callback).
  bool handling_events_here() const;
  int get_next_timeout(timeval* tv);
  int pollfds_handle_timeouts();
  const libusb_pollfd** get_pollfds();
  void set_pollfd_notifiers(libusb_pollfd_added_cb added, libusb_pollfd_removed_cb removed,
                            void* user_data);

  // Queued by agent threads; run by the event-handling thread.
  void post_completion(libusb_transfer* transfer, client::UrbResult result);

  // Lets agent threads reach the context for as long as it exists: a completion that comes
  // after libusb_exit (a program that exits with transfers in flight) is dropped.
  class Lifeline {
   public:
    explicit Lifeline(Context* context) : context_(context) {}
    void post_completion(libusb_transfer* transfer, client::UrbResult result);
    void wake();  // interrupt_event_handler()
    void cut();

   private:
    std::mutex mutex_;
    Context* context_;
  };
  const std::shared_ptr<Lifeline>& lifeline() const { return lifeline_; }

  // ---- hotplug ----
  int hotplug_register(int events, int flags, int vendor_id, int product_id, int dev_class,
                       libusb_hotplug_callback_fn callback, void* user_data,
                       libusb_hotplug_callback_handle* handle);
  void hotplug_deregister(libusb_hotplug_callback_handle handle);
  void* hotplug_user_data(libusb_hotplug_callback_handle handle);

 private:
  struct HotplugCallback;
  struct Event {
    libusb_transfer* transfer = nullptr;  // a completion, or
    client::UrbResult result;
    RemoteDevice* device = nullptr;  // a hotplug event (the event holds a reference)
    libusb_hotplug_event hotplug = LIBUSB_HOTPLUG_EVENT_DEVICE_ARRIVED;
  };

  void start_links();
  // Copies the agent links into links_snapshot_ (event-handling thread).
  void snapshot_links();
  void post(Event event);
  void wake();
  bool drain();
  int wait_and_dispatch(const timeval* tv);
  void run_completion(Event& event);
  void run_hotplug(Event& event);
  bool hotplug_matches(const HotplugCallback& cb, RemoteDevice& device,
                       libusb_hotplug_event event) const;
  void attach_device(AgentLink& link, const wire::DeviceInfo& info, bool announce);
  RemoteDevice* attach_locked(AgentLink& link, const wire::DeviceInfo& info);
  void detach_device(std::map<std::pair<AgentLink*, std::uint32_t>, RemoteDevice*>::iterator it);
  std::uint8_t bus_for(int link_index, std::uint8_t agent_bus);
  void refresh_real_pollfds();
  void notify_pollfd(int fd, bool added);
  static void LIBUSB_CALL real_pollfd_added(int fd, short events, void* self);
  static void LIBUSB_CALL real_pollfd_removed(int fd, void* self);
  static int LIBUSB_CALL real_hotplug(libusb_context* ctx, libusb_device* device,
                                      libusb_hotplug_event event, void* record);

  libusb_context* real_;
  const pid_t pid_;
  std::shared_ptr<Lifeline> lifeline_ = std::make_shared<Lifeline>(this);

  // Agents and their devices.
  std::mutex links_mutex_;
  bool links_started_ = false;
  std::vector<std::shared_ptr<AgentLink>> links_;
  std::mutex devices_mutex_;
  std::map<std::pair<AgentLink*, std::uint32_t>, RemoteDevice*> attached_;
  // Hubs USBNET_DEVICES does not name: attached when a device it selects hangs below them.
  std::map<std::pair<AgentLink*, std::uint32_t>, wire::DeviceInfo> unselected_hubs_;
  std::map<std::pair<int, std::uint8_t>, std::uint8_t> buses_;

  // The event lock and its waiters.
  std::mutex events_mutex_;
  std::atomic<bool> event_handler_active_{false};
  std::mutex waiters_mutex_;
  std::condition_variable waiters_cond_;

  // Work queued for the event-handling thread, and the eventfd that announces it.
  int wake_fd_ = -1;
  std::mutex queue_mutex_;
  std::vector<Event> queue_;
  bool wake_pending_ = false;  // an eventfd write not yet consumed
  // Set (under queue_mutex_) whenever there is work or a wake-up to consume, so that the event
  // loop skips the lock when there is none.
  std::atomic<bool> queue_hint_{false};

  // The event-handling thread's scratch space (one such thread at a time: the event lock),
  // kept so that handling events allocates nothing in the common case.
  std::vector<Event> draining_;
  std::vector<std::shared_ptr<AgentLink>> links_snapshot_;
  std::vector<pollfd> poll_fds_;
  std::vector<transport::AsioConnection::Loan> loans_;

  // The real library's descriptors, cached; refreshed when its notifiers report a change.
  std::mutex pollfds_mutex_;
  std::vector<libusb_pollfd> real_pollfds_;
  std::atomic<bool> real_pollfds_stale_{true};
  // The event-handling thread's copy of real_pollfds_, taken again only when they changed.
  std::vector<pollfd> real_poll_cache_;
  bool real_poll_cache_valid_ = false;
  // The real library signals its timeouts through a descriptor (a timerfd on Linux), so there is
  // no need to ask it for the next one on every round.
  bool real_timeouts_in_fds_ = false;
  libusb_pollfd_added_cb user_added_ = nullptr;
  libusb_pollfd_removed_cb user_removed_ = nullptr;
  void* user_pollfd_data_ = nullptr;

  std::mutex hotplug_mutex_;
  std::vector<std::unique_ptr<HotplugCallback>> hotplug_callbacks_;
  int next_hotplug_handle_ = 1;
};

}  // namespace usbnet::interpose
