#include "interpose/context.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <cstring>

#include "common/log.h"
#include "common/topology.h"
#include "interpose/agent_link.h"
#include "interpose/config.h"
#include "interpose/objects.h"
#include "interpose/real_libusb.h"
#include "interpose/remote_device.h"
#include "interpose/remote_transfer.h"

namespace usbnet::interpose {

namespace {

// The thread handling events, and for which context: callbacks that call back into event
// handling get LIBUSB_ERROR_BUSY, as with libusb.
thread_local const Context* handling_context = nullptr;

bool valid(const timeval* tv) {
  return tv && tv->tv_sec >= 0 && tv->tv_usec >= 0 && tv->tv_usec < 1000000;
}

int to_milliseconds_rounded_up(const timeval& tv) {
  const long long ms = static_cast<long long>(tv.tv_sec) * 1000 + (tv.tv_usec + 999) / 1000;
  return static_cast<int>(std::min<long long>(ms, INT_MAX));
}

constexpr std::uint8_t kFirstRemoteBus = 201;

}  // namespace

struct Context::HotplugCallback {
  Context* context = nullptr;
  int handle = 0;
  int events = 0;
  int flags = 0;
  int vendor_id = 0;
  int product_id = 0;
  int dev_class = 0;
  libusb_hotplug_callback_fn callback = nullptr;
  void* user_data = nullptr;
  libusb_hotplug_callback_handle real_handle = 0;
  std::atomic<bool> done{false};  // deregistered (its callback returned 1, or the program asked)
};

Context::Context(libusb_context* real_context) : real_(real_context), pid_(::getpid()) {
  wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (real_) {
    real_timeouts_in_fds_ = real().libusb_pollfds_handle_timeouts(real_) == 1;
    real().libusb_set_pollfd_notifiers(real_, &Context::real_pollfd_added,
                                       &Context::real_pollfd_removed, this);
  }
  contexts().add(this);
}

Context::~Context() {
  contexts().remove(this);
  lifeline_->cut();
  if (::getpid() != pid_) {
    // A fork child: the parent's agent threads do not exist here and the locks they use may
    // have been taken at the moment of the fork. Nothing of the remote side is touched.
    for (auto& link : links_) keep_forever(std::move(link));
    if (wake_fd_ >= 0) ::close(wake_fd_);
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
    for (auto& [key, device] : attached_) {
      device->mark_gone();
      device->unref();
    }
    attached_.clear();
  }
  {
    std::lock_guard lock(queue_mutex_);
    for (Event& e : queue_) {
      if (e.device) e.device->unref();
    }
    queue_.clear();
  }
  {
    std::lock_guard lock(hotplug_mutex_);
    for (auto& cb : hotplug_callbacks_) {
      if (real_ && cb->real_handle && !cb->done) {
        real().libusb_hotplug_deregister_callback(real_, cb->real_handle);
      }
    }
  }
  if (real_) real().libusb_set_pollfd_notifiers(real_, nullptr, nullptr, nullptr);
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

Context* Context::from(libusb_context* ctx) {
  return contexts().contains(ctx) ? reinterpret_cast<Context*>(ctx) : nullptr;
}

// ---- remote devices --------------------------------------------------------------------------

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
  for (auto& [key, device] : attached_) {
    if (!device->gone()) devices.push_back(device->ref());
  }
  return devices;
}

std::uint8_t Context::bus_for(int link_index, std::uint8_t agent_bus) {
  auto [it, inserted] = buses_.try_emplace({link_index, agent_bus}, 0);
  if (inserted) {
    it->second =
        static_cast<std::uint8_t>(std::min<std::size_t>(kFirstRemoteBus + buses_.size() - 1, 255));
  }
  return it->second;
}

// A device USBNET_DEVICES selects is attached with the hubs above it (which the agent lists
// before their children), so that libusb_get_parent finds them; a hub it does not name waits
// aside until then. Arrivals are announced from the top down, as libusb reports them.
void Context::attach_device(AgentLink& link, const wire::DeviceInfo& info, bool announce) {
  std::vector<RemoteDevice*> added;
  {
    std::lock_guard lock(devices_mutex_);
    const auto key = std::make_pair(&link, info.device_id);
    if (attached_.contains(key)) return;
    if (!config().devices.matches(topology::vendor_id(info), topology::product_id(info))) {
      if (topology::is_hub(info)) unselected_hubs_.emplace(key, info);
      return;
    }
    std::vector<wire::DeviceInfo> hubs;  // from the device up
    for (std::uint32_t parent = info.parent_id; parent != 0;) {
      if (attached_.contains({&link, parent})) break;
      auto hub = unselected_hubs_.find({&link, parent});
      if (hub == unselected_hubs_.end()) break;  // it left: the device has no parent now
      hubs.push_back(std::move(hub->second));
      unselected_hubs_.erase(hub);  // (which also ends a loop a broken agent might send)
      parent = hubs.back().parent_id;
    }
    for (auto hub = hubs.rbegin(); hub != hubs.rend(); ++hub) {
      added.push_back(attach_locked(link, *hub));
    }
    added.push_back(attach_locked(link, info));
  }
  if (!announce) return;
  for (RemoteDevice* device : added) {
    post(Event{nullptr, {}, device->ref(), LIBUSB_HOTPLUG_EVENT_DEVICE_ARRIVED});
  }
}

RemoteDevice* Context::attach_locked(AgentLink& link, const wire::DeviceInfo& info) {
  auto* device = new RemoteDevice(*this, link.shared_from_this(), info,
                                  bus_for(link.index(), info.bus_number));
  attached_.emplace(std::make_pair(&link, info.device_id), device);
  log::debug("remote {} {:04x}:{:04x} from {} is bus {} device {}",
             topology::is_hub(info) ? "hub" : "device", topology::vendor_id(info),
             topology::product_id(info), link.agent().to_string(), device->bus_number(),
             info.device_address);
  return device;
}

libusb_device* Context::parent_of(const RemoteDevice& device) {
  if (device.info().parent_id == 0) return nullptr;
  std::lock_guard lock(devices_mutex_);
  auto it = attached_.find({&device.link(), device.info().parent_id});
  if (it == attached_.end() || it->second->gone()) return nullptr;
  return it->second->as_libusb();
}

void Context::detach_device(
    std::map<std::pair<AgentLink*, std::uint32_t>, RemoteDevice*>::iterator it) {
  RemoteDevice* device = it->second;
  attached_.erase(it);
  device->mark_gone();
  // The context's reference passes to the event, released after the callbacks ran.
  post(Event{nullptr, {}, device, LIBUSB_HOTPLUG_EVENT_DEVICE_LEFT});
}

void Context::agent_connected(AgentLink& link, const std::vector<wire::DeviceInfo>& devices,
                              bool announce, int socket_fd) {
  for (const auto& info : devices) attach_device(link, info, announce);
  if (socket_fd >= 0) notify_pollfd(socket_fd, true);
}

void Context::agent_device_arrived(AgentLink& link, const wire::DeviceInfo& info) {
  attach_device(link, info, true);
}

void Context::agent_device_left(AgentLink& link, std::uint32_t device_id) {
  std::lock_guard lock(devices_mutex_);
  unselected_hubs_.erase({&link, device_id});
  auto it = attached_.find({&link, device_id});
  if (it != attached_.end()) detach_device(it);
}

void Context::agent_lost(AgentLink& link, int socket_fd) {
  {
    std::lock_guard lock(devices_mutex_);
    // Highest id first: devices leave before the hubs above them (the agent numbers a hub
    // before its children), as the kernel removes a tree.
    std::vector<decltype(attached_)::iterator> mine;
    for (auto it = attached_.begin(); it != attached_.end(); ++it) {
      if (it->first.first == &link) mine.push_back(it);
    }
    for (auto it = mine.rbegin(); it != mine.rend(); ++it) detach_device(*it);
    std::erase_if(unselected_hubs_, [&](const auto& hub) { return hub.first.first == &link; });
  }
  if (socket_fd >= 0) notify_pollfd(socket_fd, false);
}

// Tells a program that polls libusb's descriptors itself about an agent's socket.
void Context::notify_pollfd(int fd, bool added) {
  libusb_pollfd_added_cb on_added;
  libusb_pollfd_removed_cb on_removed;
  void* data;
  {
    std::lock_guard lock(pollfds_mutex_);
    on_added = user_added_;
    on_removed = user_removed_;
    data = user_pollfd_data_;
  }
  if (added && on_added) on_added(fd, POLLIN, data);
  if (!added && on_removed) on_removed(fd, data);
}

// ---- the event lock ------------------------------------------------------------------------

int Context::try_lock_events() {
  if (!events_mutex_.try_lock()) return 1;
  event_handler_active_ = true;
  return 0;
}

void Context::lock_events() {
  events_mutex_.lock();
  event_handler_active_ = true;
}

void Context::unlock_events() {
  event_handler_active_ = false;
  events_mutex_.unlock();
  std::lock_guard lock(waiters_mutex_);
  waiters_cond_.notify_all();
}

void Context::interrupt_event_handler() {
  std::lock_guard lock(queue_mutex_);
  wake();
}

int Context::wait_for_event(const timeval* tv) {
  // The caller holds the waiters' lock (libusb_lock_event_waiters).
  std::unique_lock lock(waiters_mutex_, std::adopt_lock);
  int r = 0;
  if (!tv) {
    waiters_cond_.wait(lock);
  } else if (!valid(tv)) {
    r = LIBUSB_ERROR_INVALID_PARAM;
  } else {
    const auto timeout = std::chrono::seconds(tv->tv_sec) + std::chrono::microseconds(tv->tv_usec);
    r = waiters_cond_.wait_for(lock, timeout) == std::cv_status::timeout ? 1 : 0;
  }
  lock.release();
  return r;
}

// ---- handling events -----------------------------------------------------------------------

int Context::handle_events_timeout_completed(const timeval* tv, int* completed) {
  // The flag is set by a callback, possibly on another thread (the shim's own synchronous
  // calls set it from whichever thread reads their answer).
  const auto done = [completed] {
    return completed && std::atomic_ref<int>(*completed).load(std::memory_order_acquire) != 0;
  };
  if (!valid(tv)) return LIBUSB_ERROR_INVALID_PARAM;
  for (;;) {
    if (try_lock_events() == 0) {
      int r = 0;
      if (!done()) r = handle_events_locked(tv);
      unlock_events();
      return r;
    }
    // Another thread handles events: wait until it has done a round.
    lock_event_waiters();
    if (done()) {
      unlock_event_waiters();
      return 0;
    }
    if (!event_handler_active()) {
      unlock_event_waiters();
      continue;  // it finished meanwhile: try to become the handler
    }
    const int r = wait_for_event(tv);
    unlock_event_waiters();
    return r < 0 ? r : 0;
  }
}

bool Context::handling_events_here() const { return handling_context == this; }

int Context::handle_events_locked(const timeval* tv) {
  if (!valid(tv)) return LIBUSB_ERROR_INVALID_PARAM;
  if (handling_context == this) return LIBUSB_ERROR_BUSY;
  handling_context = this;
  // Work the agents' threads queued runs first, and then the descriptors are served all the
  // same, only without waiting: a round that ran the queue alone would leave the real library's
  // events (local devices' completions and timeouts) and the agents' sockets unserved for as
  // long as remote completions keep coming, which in a program's own poll() loop can be for
  // ever. libusb's rounds handle every descriptor that is ready, its own event among them.
  const timeval zero{0, 0};
  const bool woken = drain();
  const int r = wait_and_dispatch(woken ? &zero : tv);
  drain();
  handling_context = nullptr;
  // Waiters re-check whether their transfer completed.
  std::lock_guard lock(waiters_mutex_);
  waiters_cond_.notify_all();
  return r;
}

void Context::snapshot_links() {
  std::lock_guard lock(links_mutex_);
  links_snapshot_.assign(links_.begin(), links_.end());
}

int Context::wait_and_dispatch(const timeval* tv) {
  std::vector<pollfd>& fds = poll_fds_;
  fds.assign(1, pollfd{wake_fd_, POLLIN, 0});
  // The agents' streams, borrowed from their io threads: an answer that arrives while this
  // thread waits is read and handled right here, without a hop through another thread.
  snapshot_links();
  loans_.clear();
  int timeout_ms = to_milliseconds_rounded_up(*tv);
  for (const auto& link : links_snapshot_) {
    auto loan = link->client().lend_stream();
    if (loan.fd() < 0) continue;
    if (loan.ready_now()) timeout_ms = 0;
    fds.push_back({loan.fd(), loan.events(), 0});
    loans_.push_back(std::move(loan));
  }
  links_snapshot_.clear();
  const std::size_t first_real = fds.size();
  bool real_timeout = false;
  if (real_) {
    if (!real_poll_cache_valid_ || real_pollfds_stale_.load(std::memory_order_acquire)) {
      refresh_real_pollfds();
      std::lock_guard lock(pollfds_mutex_);
      real_poll_cache_.clear();
      for (const libusb_pollfd& p : real_pollfds_) real_poll_cache_.push_back({p.fd, p.events, 0});
      real_poll_cache_valid_ = true;
    }
    fds.insert(fds.end(), real_poll_cache_.begin(), real_poll_cache_.end());
    timeval next{};
    if (!real_timeouts_in_fds_ && real().libusb_get_next_timeout(real_, &next) == 1) {
      const int next_ms = to_milliseconds_rounded_up(next);
      if (next_ms <= timeout_ms) {
        timeout_ms = next_ms;
        real_timeout = true;
      }
    }
  }
  const int n = ::poll(fds.data(), fds.size(), timeout_ms);
  if (n < 0) {
    loans_.clear();
    return errno == EINTR ? LIBUSB_ERROR_INTERRUPTED : LIBUSB_ERROR_IO;
  }
  for (std::size_t i = 0; i < loans_.size(); ++i) loans_[i].serve(fds[1 + i].revents);
  loans_.clear();  // given back: the io threads may read again
  bool real_ready = real_timeout && n == 0;
  for (std::size_t i = first_real; i < fds.size(); ++i) {
    if (fds[i].revents != 0) real_ready = true;
    if (fds[i].revents & POLLNVAL) {
      std::lock_guard lock(pollfds_mutex_);
      real_pollfds_stale_ = true;
    }
  }
  if (real_ready) {
    timeval zero{0, 0};
    return real().libusb_handle_events_timeout_completed(real_, &zero, nullptr);
  }
  return 0;
}

void Context::wake() {
  // Called with queue_mutex_ held: one eventfd write per batch of work.
  if (wake_pending_) return;
  wake_pending_ = true;
  queue_hint_.store(true, std::memory_order_release);
  const std::uint64_t one = 1;
  [[maybe_unused]] const ssize_t n = ::write(wake_fd_, &one, sizeof one);
}

void Context::post(Event event) {
  std::lock_guard lock(queue_mutex_);
  queue_.push_back(std::move(event));
  queue_hint_.store(true, std::memory_order_release);
  // The event-handling thread itself (reading an agent's socket) drains the queue next: no
  // need to wake it.
  if (handling_context != this) wake();
}

void Context::post_completion(libusb_transfer* transfer, client::UrbResult result) {
  post(Event{transfer, std::move(result), nullptr, {}});
}

void Context::Lifeline::post_completion(libusb_transfer* transfer, client::UrbResult result) {
  std::lock_guard lock(mutex_);
  if (context_) context_->post_completion(transfer, std::move(result));
}

void Context::Lifeline::wake() {
  std::lock_guard lock(mutex_);
  if (context_) context_->interrupt_event_handler();
}

void Context::Lifeline::cut() {
  std::lock_guard lock(mutex_);
  context_ = nullptr;
}

// Runs what the agent threads queued. Returns whether the context had been woken (work, or an
// interrupt), in which case the caller does not block.
bool Context::drain() {
  // Work is posted under the lock, with the hint set; a poster on another thread also writes
  // the eventfd, so a hint missed here still wakes the poll that follows.
  if (!queue_hint_.load(std::memory_order_acquire)) return false;
  std::vector<Event>& events = draining_;
  bool woken;
  {
    std::lock_guard lock(queue_mutex_);
    queue_hint_.store(false, std::memory_order_relaxed);
    events.swap(queue_);
    woken = wake_pending_;
    if (wake_pending_) {
      wake_pending_ = false;
      std::uint64_t count;
      [[maybe_unused]] const ssize_t n = ::read(wake_fd_, &count, sizeof count);
    }
  }
  if (events.empty()) return woken;
  // Transfers resubmitted by these callbacks leave in one write per agent.
  snapshot_links();
  for (auto& link : links_snapshot_) link->client().cork();
  for (Event& e : events) {
    if (e.transfer) {
      run_completion(e);
    } else {
      run_hotplug(e);
    }
  }
  events.clear();
  for (auto& link : links_snapshot_) link->client().uncork();
  links_snapshot_.clear();
  return true;
}

void Context::run_completion(Event& event) {
  complete_remote_transfer(event.transfer, event.result);
}

// ---- pollfds -------------------------------------------------------------------------------

void Context::refresh_real_pollfds() {
  std::lock_guard lock(pollfds_mutex_);
  if (!real_pollfds_stale_) return;
  real_pollfds_.clear();
  if (const libusb_pollfd** list = real().libusb_get_pollfds(real_)) {
    for (const libusb_pollfd** p = list; *p; ++p) real_pollfds_.push_back(**p);
    real().libusb_free_pollfds(list);
  }
  real_pollfds_stale_ = false;
}

void LIBUSB_CALL Context::real_pollfd_added(int fd, short events, void* self) {
  auto* ctx = static_cast<Context*>(self);
  libusb_pollfd_added_cb added;
  void* data;
  {
    std::lock_guard lock(ctx->pollfds_mutex_);
    ctx->real_pollfds_stale_ = true;
    added = ctx->user_added_;
    data = ctx->user_pollfd_data_;
  }
  if (added) added(fd, events, data);
}

void LIBUSB_CALL Context::real_pollfd_removed(int fd, void* self) {
  auto* ctx = static_cast<Context*>(self);
  libusb_pollfd_removed_cb removed;
  void* data;
  {
    std::lock_guard lock(ctx->pollfds_mutex_);
    ctx->real_pollfds_stale_ = true;
    removed = ctx->user_removed_;
    data = ctx->user_pollfd_data_;
  }
  if (removed) removed(fd, data);
}

const libusb_pollfd** Context::get_pollfds() {
  // The wake-up eventfd, the agents' sockets (so that the program's own loop wakes up for
  // their answers and hands them to libusb_handle_events* to read), and the real library's.
  std::vector<libusb_pollfd> all{{wake_fd_, POLLIN}};
  {
    std::lock_guard lock(links_mutex_);
    for (const auto& link : links_) {
      if (const int fd = link->client().socket_fd(); fd >= 0) all.push_back({fd, POLLIN});
    }
  }
  if (real_) {
    {
      std::lock_guard lock(pollfds_mutex_);
      real_pollfds_stale_ = true;
    }
    refresh_real_pollfds();
    std::lock_guard lock(pollfds_mutex_);
    all.insert(all.end(), real_pollfds_.begin(), real_pollfds_.end());
  }
  // One block, like libusb's: the NULL-terminated pointer array, then the structs.
  const std::size_t pointers = (all.size() + 1) * sizeof(libusb_pollfd*);
  void* block = std::malloc(pointers + all.size() * sizeof(libusb_pollfd));
  if (!block) return nullptr;
  auto** list = static_cast<const libusb_pollfd**>(block);
  auto* structs = reinterpret_cast<libusb_pollfd*>(static_cast<char*>(block) + pointers);
  for (std::size_t i = 0; i < all.size(); ++i) {
    structs[i] = all[i];
    list[i] = &structs[i];
  }
  list[all.size()] = nullptr;
  allocations().add(block);
  return list;
}

void Context::set_pollfd_notifiers(libusb_pollfd_added_cb added, libusb_pollfd_removed_cb removed,
                                   void* user_data) {
  std::lock_guard lock(pollfds_mutex_);
  user_added_ = added;
  user_removed_ = removed;
  user_pollfd_data_ = user_data;
}

int Context::get_next_timeout(timeval* tv) {
  return real_ ? real().libusb_get_next_timeout(real_, tv) : 0;
}

int Context::pollfds_handle_timeouts() {
  return real_ ? real().libusb_pollfds_handle_timeouts(real_) : 1;
}

// ---- hotplug -------------------------------------------------------------------------------

bool Context::hotplug_matches(const HotplugCallback& cb, RemoteDevice& device,
                              libusb_hotplug_event event) const {
  if (cb.done || !(cb.events & event)) return false;
  if (cb.vendor_id != LIBUSB_HOTPLUG_MATCH_ANY && cb.vendor_id != device.vendor_id()) return false;
  if (cb.product_id != LIBUSB_HOTPLUG_MATCH_ANY && cb.product_id != device.product_id()) {
    return false;
  }
  return cb.dev_class == LIBUSB_HOTPLUG_MATCH_ANY ||
         cb.dev_class == device.info().device_descriptor[4];
}

void Context::run_hotplug(Event& event) {
  std::vector<HotplugCallback*> callbacks;
  {
    std::lock_guard lock(hotplug_mutex_);
    for (auto& cb : hotplug_callbacks_) callbacks.push_back(cb.get());
  }
  for (HotplugCallback* cb : callbacks) {
    {
      std::lock_guard lock(hotplug_mutex_);
      if (!hotplug_matches(*cb, *event.device, event.hotplug)) continue;
    }
    if (cb->callback(as_libusb(), event.device->as_libusb(), event.hotplug, cb->user_data) == 1) {
      hotplug_deregister(cb->handle);
    }
  }
  event.device->unref();
}

int LIBUSB_CALL Context::real_hotplug(libusb_context*, libusb_device* device,
                                      libusb_hotplug_event event, void* record) {
  auto* cb = static_cast<HotplugCallback*>(record);
  if (cb->done) return 1;
  const int r = cb->callback(cb->context->as_libusb(), device, event, cb->user_data);
  if (r == 1) cb->done = true;  // the real library drops its registration
  return r;
}

int Context::hotplug_register(int events, int flags, int vendor_id, int product_id, int dev_class,
                              libusb_hotplug_callback_fn callback, void* user_data,
                              libusb_hotplug_callback_handle* handle) {
  constexpr int kAllEvents = LIBUSB_HOTPLUG_EVENT_DEVICE_ARRIVED | LIBUSB_HOTPLUG_EVENT_DEVICE_LEFT;
  auto in_range = [](int v, int max) {
    return v == LIBUSB_HOTPLUG_MATCH_ANY || (v >= 0 && v <= max);
  };
  if (!callback || events == 0 || (events & ~kAllEvents) != 0 || !in_range(vendor_id, 0xffff) ||
      !in_range(product_id, 0xffff) || !in_range(dev_class, 0xff)) {
    return LIBUSB_ERROR_INVALID_PARAM;
  }
  auto owned = std::make_unique<HotplugCallback>();
  owned->context = this;
  owned->events = events;
  owned->flags = flags;
  owned->vendor_id = vendor_id;
  owned->product_id = product_id;
  owned->dev_class = dev_class;
  owned->callback = callback;
  owned->user_data = user_data;
  HotplugCallback* cb = owned.get();
  {
    std::lock_guard lock(hotplug_mutex_);
    cb->handle = next_hotplug_handle_++;
    hotplug_callbacks_.push_back(std::move(owned));
  }
  if (handle) *handle = cb->handle;
  if (real_) {
    // With ENUMERATE, the real library reports the local devices now, in this thread.
    const int r = real().libusb_hotplug_register_callback(
        real_, static_cast<libusb_hotplug_event>(events), static_cast<libusb_hotplug_flag>(flags),
        vendor_id, product_id, dev_class, &Context::real_hotplug, cb, &cb->real_handle);
    if (r != 0) {
      std::lock_guard lock(hotplug_mutex_);
      std::erase_if(hotplug_callbacks_, [cb](const auto& p) { return p.get() == cb; });
      return r;
    }
  }
  // Remote devices: connecting now means their later arrivals and departures are reported.
  const std::vector<RemoteDevice*> present = remote_devices();
  for (RemoteDevice* device : present) {
    const bool report = (flags & LIBUSB_HOTPLUG_ENUMERATE) &&
                        hotplug_matches(*cb, *device, LIBUSB_HOTPLUG_EVENT_DEVICE_ARRIVED);
    if (report && cb->callback(as_libusb(), device->as_libusb(),
                               LIBUSB_HOTPLUG_EVENT_DEVICE_ARRIVED, user_data) == 1) {
      hotplug_deregister(cb->handle);
    }
    device->unref();
  }
  return LIBUSB_SUCCESS;
}

void Context::hotplug_deregister(libusb_hotplug_callback_handle handle) {
  std::unique_ptr<HotplugCallback> removed;
  {
    std::lock_guard lock(hotplug_mutex_);
    auto it = std::find_if(hotplug_callbacks_.begin(), hotplug_callbacks_.end(),
                           [handle](const auto& cb) { return cb->handle == handle; });
    if (it == hotplug_callbacks_.end()) return;
    (*it)->done = true;
    if (real_ && (*it)->real_handle) {
      real().libusb_hotplug_deregister_callback(real_, (*it)->real_handle);
    }
  }
  // The record stays allocated (marked done) until the context ends: a callback being run at
  // this moment on another path may still hold it.
}

void* Context::hotplug_user_data(libusb_hotplug_callback_handle handle) {
  std::lock_guard lock(hotplug_mutex_);
  for (const auto& cb : hotplug_callbacks_) {
    if (cb->handle == handle && !cb->done) return cb->user_data;
  }
  return nullptr;
}

}  // namespace usbnet::interpose
