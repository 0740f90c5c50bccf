// libusb's events handled on the agent's io thread, without a thread of their own.
//
// With a thread that handles a context's events, every completed transfer cost two wake-ups
// before its completion left: the event thread's (poll returns, the URB is reaped, the result is
// posted) and then the io thread's (woken through the reactor to send it). Profiled in the lab's
// guest, that thread and the post took a sixth of the agent's CPU per URB. Here the io thread's
// reactor watches libusb's descriptors itself: they are kept in an epoll set of the pump's own
// (libusb's pollfd notifiers add and remove them, from whichever thread opens or closes a
// device), the reactor waits for that set to be readable, and the io thread then calls
// libusb_handle_events_timeout_completed with a zero timeout: libusb polls, reaps and runs the
// transfer callbacks there, on the io thread. libusb's timeouts come through its timer
// descriptor (Linux), or else through a timer armed from libusb_get_next_timeout.
#pragma once

#include <libusb.h>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <memory>
#include <mutex>

namespace usbnet::agent {

class UsbEventPump : public std::enable_shared_from_this<UsbEventPump> {
 public:
  // Starts watching (call on the io thread). Null if the epoll set cannot be made (logged).
  static std::shared_ptr<UsbEventPump> start(boost::asio::any_io_executor io, libusb_context* ctx);
  ~UsbEventPump();
  UsbEventPump(const UsbEventPump&) = delete;
  UsbEventPump& operator=(const UsbEventPump&) = delete;

  // From any thread, before the context ends: no call into libusb starts after it returns, and
  // one in progress on the io thread has finished. The pump itself goes when the io thread
  // drops its last wait.
  void stop();

  // True on the thread that is handling a pump's libusb events right now (transfer callbacks
  // run inside): what they do can be done there, without a post.
  static bool handling_events_here();

  // UsbEventPump(...) is public for make_shared only; use start().
  UsbEventPump(boost::asio::any_io_executor io, libusb_context* ctx, int epoll_fd);

 private:
  static void LIBUSB_CALL on_added(int fd, short events, void* self);
  static void LIBUSB_CALL on_removed(int fd, void* self);
  void watch();
  void handle();
  void arm_timeout();

  libusb_context* const ctx_;
  const int epoll_fd_;                             // libusb's descriptors
  boost::asio::posix::stream_descriptor watcher_;  // the epoll set, in the io thread's reactor
  boost::asio::steady_timer timeout_;              // only without libusb's timer descriptor
  const bool libusb_times_itself_;
  std::mutex mutex_;  // held while handling events; stop() takes it
  bool stopped_ = false;
};

}  // namespace usbnet::agent
