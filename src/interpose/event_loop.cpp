#include "interpose/event_loop.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <climits>
#include <cstdlib>

#include "interpose/agent_link.h"
#include "interpose/objects.h"
#include "interpose/real_libusb.h"
#include "interpose/remote_device.h"
#include "interpose/remote_transfer.h"

namespace usbnet::interpose {

namespace {

// The thread handling events, and for which loop: callbacks that call back into event handling
// get LIBUSB_ERROR_BUSY, as with libusb.
thread_local const EventLoop* handling_loop = nullptr;

bool valid(const timeval* tv) {
  return tv && tv->tv_sec >= 0 && tv->tv_usec >= 0 && tv->tv_usec < 1000000;
}

int to_milliseconds_rounded_up(const timeval& tv) {
  const long long ms = static_cast<long long>(tv.tv_sec) * 1000 + (tv.tv_usec + 999) / 1000;
  return static_cast<int>(std::min<long long>(ms, INT_MAX));
}

}  // namespace

EventLoop::EventLoop(libusb_context* real_context, EventSources& sources)
    : real_(real_context), sources_(sources) {
  wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (real_) {
    real_timeouts_in_fds_ = real().libusb_pollfds_handle_timeouts(real_) == 1;
    real().libusb_set_pollfd_notifiers(real_, &EventLoop::real_pollfd_added,
                                       &EventLoop::real_pollfd_removed, this);
  }
}

EventLoop::~EventLoop() {
  lifeline_->cut();
  // Hotplug events still queued keep their device references: a fork child must not release
  // them (see Context), and a parent's context releases them in Context::~Context.
  if (real_) real().libusb_set_pollfd_notifiers(real_, nullptr, nullptr, nullptr);
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

void EventLoop::discard_queue() {
  std::lock_guard lock(queue_mutex_);
  for (Event& e : queue_) {
    if (e.device) e.device->unref();
  }
  queue_.clear();
}

// Tells a program that polls libusb's descriptors itself about an agent's socket.
EventLoop::Notifiers EventLoop::notifiers(bool real_changed) {
  std::lock_guard lock(pollfds_mutex_);
  if (real_changed) real_pollfds_stale_ = true;
  return {user_added_, user_removed_, user_pollfd_data_};
}

void EventLoop::notify_pollfd(int fd, bool added) {
  const Notifiers n = notifiers(false);
  if (added && n.added) n.added(fd, POLLIN, n.data);
  if (!added && n.removed) n.removed(fd, n.data);
}

// ---- the event lock ------------------------------------------------------------------------

int EventLoop::try_lock_events() {
  if (!events_mutex_.try_lock()) return 1;
  event_handler_active_ = true;
  return 0;
}

void EventLoop::lock_events() {
  events_mutex_.lock();
  event_handler_active_ = true;
}

void EventLoop::unlock_events() {
  event_handler_active_ = false;
  events_mutex_.unlock();
  std::lock_guard lock(waiters_mutex_);
  waiters_cond_.notify_all();
}

void EventLoop::interrupt_event_handler() {
  std::lock_guard lock(queue_mutex_);
  wake();
}

int EventLoop::wait_for_event(const timeval* tv) {
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

int EventLoop::handle_events_timeout_completed(const timeval* tv, int* completed) {
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

bool EventLoop::handling_events_here() const { return handling_loop == this; }

int EventLoop::handle_events_locked(const timeval* tv) {
  if (!valid(tv)) return LIBUSB_ERROR_INVALID_PARAM;
  if (handling_loop == this) return LIBUSB_ERROR_BUSY;
  handling_loop = this;
  // Work the agents' threads queued runs first, and then the descriptors are served all the
  // same, only without waiting: a round that ran the queue alone would leave the real library's
  // events (local devices' completions and timeouts) and the agents' sockets unserved for as
  // long as remote completions keep coming, which in a program's own poll() loop can be for
  // ever. libusb's rounds handle every descriptor that is ready, its own event among them.
  const timeval zero{0, 0};
  const bool woken = drain();
  const int r = wait_and_dispatch(woken ? &zero : tv);
  drain();
  handling_loop = nullptr;
  // Waiters re-check whether their transfer completed.
  std::lock_guard lock(waiters_mutex_);
  waiters_cond_.notify_all();
  return r;
}

void EventLoop::snapshot_links() {
  links_snapshot_.clear();
  sources_.agents(links_snapshot_);
}

int EventLoop::wait_and_dispatch(const timeval* tv) {
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

void EventLoop::wake() {
  // Called with queue_mutex_ held: one eventfd write per batch of work.
  if (wake_pending_) return;
  wake_pending_ = true;
  queue_hint_.store(true, std::memory_order_release);
  const std::uint64_t one = 1;
  [[maybe_unused]] const ssize_t n = ::write(wake_fd_, &one, sizeof one);
}

void EventLoop::post(Event event) {
  std::lock_guard lock(queue_mutex_);
  queue_.push_back(std::move(event));
  queue_hint_.store(true, std::memory_order_release);
  // The event-handling thread itself (reading an agent's socket) drains the queue next: no
  // need to wake it.
  if (handling_loop != this) wake();
}

void EventLoop::post_completion(libusb_transfer* transfer) { post(Event{transfer, nullptr, {}}); }

void EventLoop::post_hotplug(RemoteDevice* device, libusb_hotplug_event event) {
  post(Event{nullptr, device, event});
}

void EventLoop::drop_completion(const libusb_transfer* transfer) {
  std::lock_guard lock(queue_mutex_);
  std::erase_if(queue_, [transfer](const Event& e) { return e.transfer == transfer; });
}

void EventLoop::Lifeline::cut() {
  std::lock_guard lock(mutex_);
  loop_ = nullptr;
}

// Runs what the agent threads queued. Returns whether the loop had been woken (work, or an
// interrupt), in which case the caller does not block.
bool EventLoop::drain() {
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
      run_transfer_callback(e.transfer);
    } else {
      sources_.run_hotplug(*e.device, e.hotplug);
      e.device->unref();
    }
  }
  events.clear();
  for (auto& link : links_snapshot_) link->client().uncork();
  links_snapshot_.clear();
  return true;
}

// ---- pollfds -------------------------------------------------------------------------------

void EventLoop::refresh_real_pollfds() {
  std::lock_guard lock(pollfds_mutex_);
  if (!real_pollfds_stale_) return;
  real_pollfds_.clear();
  if (const libusb_pollfd** list = real().libusb_get_pollfds(real_)) {
    for (const libusb_pollfd** p = list; *p; ++p) real_pollfds_.push_back(**p);
    real().libusb_free_pollfds(list);
  }
  real_pollfds_stale_ = false;
}

void LIBUSB_CALL EventLoop::real_pollfd_added(int fd, short events, void* self) {
  const Notifiers n = static_cast<EventLoop*>(self)->notifiers(true);
  if (n.added) n.added(fd, events, n.data);
}

void LIBUSB_CALL EventLoop::real_pollfd_removed(int fd, void* self) {
  const Notifiers n = static_cast<EventLoop*>(self)->notifiers(true);
  if (n.removed) n.removed(fd, n.data);
}

const libusb_pollfd** EventLoop::get_pollfds() {
  // The wake-up eventfd, the agents' sockets (so that the program's own loop wakes up for
  // their answers and hands them to libusb_handle_events* to read), and the real library's.
  std::vector<libusb_pollfd> all{{wake_fd_, POLLIN}};
  std::vector<std::shared_ptr<AgentLink>> links;
  sources_.agents(links);
  for (const auto& link : links) {
    if (const int fd = link->client().socket_fd(); fd >= 0) all.push_back({fd, POLLIN});
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

void EventLoop::set_pollfd_notifiers(libusb_pollfd_added_cb added, libusb_pollfd_removed_cb removed,
                                     void* user_data) {
  std::lock_guard lock(pollfds_mutex_);
  user_added_ = added;
  user_removed_ = removed;
  user_pollfd_data_ = user_data;
}

int EventLoop::get_next_timeout(timeval* tv) {
  return real_ ? real().libusb_get_next_timeout(real_, tv) : 0;
}

int EventLoop::pollfds_handle_timeouts() {
  return real_ ? real().libusb_pollfds_handle_timeouts(real_) : 1;
}

}  // namespace usbnet::interpose
