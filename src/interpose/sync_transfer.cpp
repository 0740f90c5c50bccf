// The synchronous transfers on remote handles, as libusb's sync.c builds them: an asynchronous
// transfer, submitted and waited for by handling the context's events until its callback ran.
#include <array>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <vector>

#include "common/log.h"
#include "interpose/context.h"
#include "interpose/remote_device.h"

namespace usbnet::interpose {

namespace {

// The transfer never reaches the real library, so it lives on the caller's stack (no iso
// packets); `completed` is set by its callback, in whichever thread handles the events.
struct SyncTransfer {
  libusb_transfer transfer{};
  int completed = 0;

  static void LIBUSB_CALL done(libusb_transfer* t) {
    std::atomic_ref<int>(static_cast<SyncTransfer*>(t->user_data)->completed)
        .store(1, std::memory_order_release);
  }
  bool is_completed() {
    return std::atomic_ref<int>(completed).load(std::memory_order_acquire) != 0;
  }
};

// Submits the transfer and handles the context's events until its callback has run. Returns
// the submission's error, or SUCCESS with the outcome in the transfer.
int submit_and_wait(RemoteHandle& handle, SyncTransfer& sync) {
  libusb_transfer* t = &sync.transfer;
  t->dev_handle = handle.as_libusb();
  t->callback = &SyncTransfer::done;
  t->user_data = &sync;
  if (const int r = handle.submit_transfer(t); r != LIBUSB_SUCCESS) return r;
  EventLoop& events = handle.device().context().events();
  while (!sync.is_completed()) {
    timeval tv{60, 0};
    const int r = events.handle_events_timeout_completed(&tv, &sync.completed);
    if (r < 0 && r != LIBUSB_ERROR_INTERRUPTED) {
      log::warn("event handling failed ({}); cancelling the transfer", libusb_error_name(r));
      handle.cancel_transfer(t);
    }
  }
  return LIBUSB_SUCCESS;
}

// As libusb's sync.c reports a transfer's outcome.
int status_to_error(libusb_transfer_status status) {
  switch (status) {
    case LIBUSB_TRANSFER_COMPLETED:
      return LIBUSB_SUCCESS;
    case LIBUSB_TRANSFER_TIMED_OUT:
      return LIBUSB_ERROR_TIMEOUT;
    case LIBUSB_TRANSFER_STALL:
      return LIBUSB_ERROR_PIPE;
    case LIBUSB_TRANSFER_NO_DEVICE:
      return LIBUSB_ERROR_NO_DEVICE;
    case LIBUSB_TRANSFER_OVERFLOW:
      return LIBUSB_ERROR_OVERFLOW;
    case LIBUSB_TRANSFER_ERROR:
    case LIBUSB_TRANSFER_CANCELLED:
      return LIBUSB_ERROR_IO;
  }
  return LIBUSB_ERROR_OTHER;
}

// What errno holds after a synchronous transfer on a remote device ends in an error: what
// libusb's Linux backend leaves there. libusb promises nothing about errno, but it reaps
// completed URBs until the kernel answers EAGAIN (ENODEV once the device is gone), and programs
// have come to rely on it: Debian's lsusb prints "can't get debug descriptor: <errno>" unless
// errno is EPIPE or EAGAIN, so a STALL of an optional descriptor is silent on a local device.
// Without this, errno is whatever the shim's own system calls last left there.
int with_libusb_errno(int result) {
  if (result < 0) errno = result == LIBUSB_ERROR_NO_DEVICE ? ENODEV : EAGAIN;
  return result;
}

int bulk_or_interrupt(RemoteHandle& handle, unsigned char endpoint, unsigned char* data, int length,
                      int* transferred, unsigned int timeout, std::uint8_t type) {
  if (handle.device().context().events().handling_events_here()) return LIBUSB_ERROR_BUSY;
  SyncTransfer sync;
  libusb_fill_bulk_transfer(&sync.transfer, handle.as_libusb(), endpoint, data, length, nullptr,
                            nullptr, timeout);
  sync.transfer.type = type;
  const int r = submit_and_wait(handle, sync);
  // (Also 0 when the submission failed, which libusb leaves unset: no program reads garbage.)
  if (transferred) *transferred = r == LIBUSB_SUCCESS ? sync.transfer.actual_length : 0;
  return with_libusb_errno(r == LIBUSB_SUCCESS ? status_to_error(sync.transfer.status) : r);
}

}  // namespace

int RemoteHandle::control_transfer(std::uint8_t request_type, std::uint8_t request,
                                   std::uint16_t value, std::uint16_t index, unsigned char* data,
                                   std::uint16_t length, unsigned int timeout) {
  if (device_.context().events().handling_events_here()) return LIBUSB_ERROR_BUSY;
  if (length > 0 && !data) return LIBUSB_ERROR_INVALID_PARAM;
  // The setup packet and the data stage in one buffer, as libusb lays a control transfer out;
  // IN data reaches the caller's buffer only on success.
  constexpr std::size_t kOnStack = 256;
  std::array<unsigned char, LIBUSB_CONTROL_SETUP_SIZE + kOnStack> small;
  std::vector<unsigned char> large;
  unsigned char* buffer = small.data();
  if (length > kOnStack) {
    large.resize(LIBUSB_CONTROL_SETUP_SIZE + length);
    buffer = large.data();
  }
  libusb_fill_control_setup(buffer, request_type, request, value, index, length);
  const bool is_in = (request_type & LIBUSB_ENDPOINT_IN) != 0;
  if (!is_in && length > 0) std::memcpy(buffer + LIBUSB_CONTROL_SETUP_SIZE, data, length);
  SyncTransfer sync;
  libusb_fill_control_transfer(&sync.transfer, as_libusb(), buffer, nullptr, nullptr, timeout);
  if (const int r = submit_and_wait(*this, sync); r != LIBUSB_SUCCESS) return with_libusb_errno(r);
  const libusb_transfer& t = sync.transfer;
  const int r = status_to_error(t.status);
  if (r != LIBUSB_SUCCESS) return with_libusb_errno(r);
  if (is_in && t.actual_length > 0) {
    std::memcpy(data, buffer + LIBUSB_CONTROL_SETUP_SIZE,
                static_cast<std::size_t>(t.actual_length));
  }
  return t.actual_length;
}

int RemoteHandle::bulk_transfer(unsigned char endpoint, unsigned char* data, int length,
                                int* transferred, unsigned int timeout) {
  return bulk_or_interrupt(*this, endpoint, data, length, transferred, timeout,
                           LIBUSB_TRANSFER_TYPE_BULK);
}

int RemoteHandle::interrupt_transfer(unsigned char endpoint, unsigned char* data, int length,
                                     int* transferred, unsigned int timeout) {
  return bulk_or_interrupt(*this, endpoint, data, length, transferred, timeout,
                           LIBUSB_TRANSFER_TYPE_INTERRUPT);
}

}  // namespace usbnet::interpose
