#include "agent/usb_event_pump.h"

#include <poll.h>
#include <sys/epoll.h>
#include <unistd.h>

#include <boost/asio/post.hpp>
#include <cerrno>
#include <cstring>

#include "common/log.h"

namespace usbnet::agent {

namespace asio = boost::asio;

namespace {

thread_local int handling_depth = 0;

std::uint32_t epoll_events_of(short poll_events) {
  std::uint32_t events = 0;
  if (poll_events & POLLIN) events |= EPOLLIN;
  if (poll_events & POLLOUT) events |= EPOLLOUT;
  return events;
}

}  // namespace

std::shared_ptr<UsbEventPump> UsbEventPump::start(asio::any_io_executor io, libusb_context* ctx) {
  const int epoll_fd = ::epoll_create1(EPOLL_CLOEXEC);
  if (epoll_fd < 0) {
    log::error("cannot watch libusb's descriptors: epoll_create1: {}", std::strerror(errno));
    return nullptr;
  }
  auto pump = std::make_shared<UsbEventPump>(std::move(io), ctx, epoll_fd);
  // Notifiers first, then what libusb has already: a descriptor added in between is added
  // twice, which epoll refuses harmlessly.
  libusb_set_pollfd_notifiers(ctx, &UsbEventPump::on_added, &UsbEventPump::on_removed, pump.get());
  if (const libusb_pollfd** fds = libusb_get_pollfds(ctx)) {
    for (const libusb_pollfd** p = fds; *p; ++p) on_added((*p)->fd, (*p)->events, pump.get());
    libusb_free_pollfds(fds);
  }
  pump->watch();
  if (!pump->libusb_times_itself_) pump->arm_timeout();
  return pump;
}

UsbEventPump::UsbEventPump(asio::any_io_executor io, libusb_context* ctx, int epoll_fd)
    : ctx_(ctx),
      epoll_fd_(epoll_fd),
      watcher_(io),
      timeout_(io),
      libusb_times_itself_(libusb_pollfds_handle_timeouts(ctx) != 0) {
  boost::system::error_code ec;
  watcher_.assign(epoll_fd_, ec);
  if (ec) log::error("cannot watch libusb's descriptors: {}", ec.message());
}

UsbEventPump::~UsbEventPump() {
  // The watcher does not own the epoll set: it must not close it (a number reused meanwhile
  // would be someone else's).
  if (watcher_.is_open()) watcher_.release();
  ::close(epoll_fd_);
}

void UsbEventPump::stop() {
  {
    std::lock_guard lock(mutex_);
    if (stopped_) return;
    stopped_ = true;
  }
  libusb_set_pollfd_notifiers(ctx_, nullptr, nullptr, nullptr);
  // The io thread lets go of its wait (and with it the pump) the next time it runs.
  asio::post(watcher_.get_executor(), [self = shared_from_this()] {
    if (self->watcher_.is_open()) self->watcher_.release();
    self->timeout_.cancel();
  });
}

bool UsbEventPump::handling_events_here() { return handling_depth > 0; }

void LIBUSB_CALL UsbEventPump::on_added(int fd, short events, void* self) {
  auto* pump = static_cast<UsbEventPump*>(self);
  epoll_event ev{};
  ev.events = epoll_events_of(events);
  ev.data.fd = fd;
  if (::epoll_ctl(pump->epoll_fd_, EPOLL_CTL_ADD, fd, &ev) != 0 && errno != EEXIST) {
    log::error("cannot watch libusb descriptor {}: {}", fd, std::strerror(errno));
  }
}

void LIBUSB_CALL UsbEventPump::on_removed(int fd, void* self) {
  // Called before libusb closes it, on the thread that closes the device: epoll_ctl is safe
  // from any thread, so the set never holds a descriptor number that is gone.
  ::epoll_ctl(static_cast<UsbEventPump*>(self)->epoll_fd_, EPOLL_CTL_DEL, fd, nullptr);
}

void UsbEventPump::watch() {
  if (!watcher_.is_open()) return;
  watcher_.async_wait(asio::posix::stream_descriptor::wait_read,
                      [self = shared_from_this()](const boost::system::error_code& ec) {
                        if (ec) return;
                        self->handle();
                        self->watch();
                      });
}

void UsbEventPump::handle() {
  std::lock_guard lock(mutex_);
  if (stopped_) return;
  timeval zero{0, 0};
  ++handling_depth;
  libusb_handle_events_timeout_completed(ctx_, &zero, nullptr);
  --handling_depth;
  if (!libusb_times_itself_) arm_timeout();
}

// Without libusb's timer descriptor: wake up when its next transfer times out.
void UsbEventPump::arm_timeout() {
  timeval next{};
  if (libusb_get_next_timeout(ctx_, &next) != 1) return;
  timeout_.expires_after(std::chrono::seconds(next.tv_sec) +
                         std::chrono::microseconds(next.tv_usec));
  timeout_.async_wait([self = shared_from_this()](const boost::system::error_code& ec) {
    if (!ec) self->handle();
  });
}

}  // namespace usbnet::agent
