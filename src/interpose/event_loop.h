// A context's event loop, in libusb's model (its io.c): one thread at a time holds the event
// lock and handles events; others wait on the waiters' condition. Handling events means polling
// the real library's file descriptors together with the loop's wake-up eventfd and the agents'
// streams (borrowed from their io threads), letting the real library handle its events, and
// running what the agents' threads queued: the callbacks of remote transfers and remote hotplug
// events. So callbacks run only inside the program's event-handling calls, in that thread,
// whether the device is local or remote, and a program that polls libusb's descriptors itself
// (get_pollfds, with the mirror of the real library's descriptors kept here) wakes up for
// remote completions too.
#pragma once

#include <libusb.h>
#include <poll.h>

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <vector>

#include "transport/asio_connection.h"

namespace usbnet::interpose {

class AgentLink;
class RemoteDevice;

// What the loop serves besides its own queue: the context's agents and its hotplug callbacks.
class EventSources {
 public:
  virtual ~EventSources() = default;
  // The agent links as they are now.
  virtual void agents(std::vector<std::shared_ptr<AgentLink>>& into) = 0;
  // Runs the callbacks of a remote hotplug event (on the event-handling thread).
  virtual void run_hotplug(RemoteDevice& device, libusb_hotplug_event event) = 0;
};

class EventLoop {
 public:
  // `real_context` may be null (only remote devices). `sources` outlives the loop.
  EventLoop(libusb_context* real_context, EventSources& sources);
  ~EventLoop();
  EventLoop(const EventLoop&) = delete;
  EventLoop& operator=(const EventLoop&) = delete;

  // ---- libusb's event API ----
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
  // True when the calling thread is inside this loop's event handling (a callback).
  bool handling_events_here() const;
  int get_next_timeout(timeval* tv);
  int pollfds_handle_timeouts();
  const libusb_pollfd** get_pollfds();
  void set_pollfd_notifiers(libusb_pollfd_added_cb added, libusb_pollfd_removed_cb removed,
                            void* user_data);
  // Tells a program that polls libusb's descriptors itself about an agent's socket.
  void notify_pollfd(int fd, bool added);

  // ---- work queued by the agents' threads ----
  // A remote transfer whose outcome is filled in: its callback runs on the event thread.
  void post_completion(libusb_transfer* transfer);
  // The transfer is being freed: a completion of it still queued is dropped.
  void drop_completion(const libusb_transfer* transfer);
  // A remote hotplug event; the loop holds the reference to `device` that the caller passes.
  void post_hotplug(RemoteDevice* device, libusb_hotplug_event event);
  // Drops what is queued, releasing the hotplug events' device references (the context ends).
  void discard_queue();

  // Lets agent threads reach the loop for as long as it exists: a completion that comes after
  // libusb_exit (a program that exits with transfers in flight) is dropped.
  class Lifeline {
   public:
    explicit Lifeline(EventLoop* loop) : loop_(loop) {}
    // Runs `record` (which writes the outcome into the transfer) and queues the transfer, or
    // does neither once the loop is gone.
    template <typename Record>
    void post_completion(libusb_transfer* transfer, Record&& record) {
      std::lock_guard lock(mutex_);
      if (!loop_) return;
      record();
      loop_->post_completion(transfer);
    }
    void cut();

   private:
    std::mutex mutex_;
    EventLoop* loop_;
  };
  const std::shared_ptr<Lifeline>& lifeline() const { return lifeline_; }

 private:
  struct Event {
    libusb_transfer* transfer = nullptr;  // a completion, or
    RemoteDevice* device = nullptr;       // a hotplug event (the event holds a reference)
    libusb_hotplug_event hotplug = LIBUSB_HOTPLUG_EVENT_DEVICE_ARRIVED;
  };

  // Copies the agent links into links_snapshot_ (event-handling thread).
  void snapshot_links();
  void post(Event event);
  void wake();
  bool drain();
  int wait_and_dispatch(const timeval* tv);
  void refresh_real_pollfds();
  // The program's pollfd notifiers; `real_changed`: the real library's descriptors changed.
  struct Notifiers {
    libusb_pollfd_added_cb added;
    libusb_pollfd_removed_cb removed;
    void* data;
  };
  Notifiers notifiers(bool real_changed);
  static void LIBUSB_CALL real_pollfd_added(int fd, short events, void* self);
  static void LIBUSB_CALL real_pollfd_removed(int fd, void* self);

  libusb_context* real_;
  EventSources& sources_;
  std::shared_ptr<Lifeline> lifeline_ = std::make_shared<Lifeline>(this);

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
};

}  // namespace usbnet::interpose
