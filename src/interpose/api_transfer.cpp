// Transfers: every transfer comes from the real allocator; those on remote handles are run by
// the shim, the others by the real library.
#include <cerrno>

#include "interpose/api.h"
#include "interpose/remote_device.h"
#include "interpose/remote_transfer.h"

using namespace usbnet::interpose;

namespace {

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

}  // namespace

USBNET_EXPORT struct libusb_transfer* libusb_alloc_transfer(int iso_packets) {
  return real().libusb_alloc_transfer(iso_packets);
}

USBNET_EXPORT void libusb_free_transfer(struct libusb_transfer* transfer) {
  if (transfer && is_remote_transfer_in_flight(transfer)) {
    usbnet::log::warn(
        "a transfer was freed while in flight on a remote device; its completion is lost");
  }
  real().libusb_free_transfer(transfer);
}

USBNET_EXPORT int libusb_submit_transfer(struct libusb_transfer* transfer) {
  if (RemoteHandle* handle = RemoteHandle::from(transfer->dev_handle)) {
    return guarded(int{LIBUSB_ERROR_NO_MEM},
                   [&] { return submit_remote_transfer(*handle, transfer); });
  }
  return real().libusb_submit_transfer(transfer);
}

USBNET_EXPORT int libusb_cancel_transfer(struct libusb_transfer* transfer) {
  if (RemoteHandle::from(transfer->dev_handle) || is_remote_transfer_in_flight(transfer)) {
    return guarded(int{LIBUSB_ERROR_NO_MEM}, [&] { return cancel_remote_transfer(transfer); });
  }
  return real().libusb_cancel_transfer(transfer);
}

USBNET_EXPORT void libusb_transfer_set_stream_id(struct libusb_transfer* transfer,
                                                 uint32_t stream_id) {
  real().libusb_transfer_set_stream_id(transfer, stream_id);
}

USBNET_EXPORT uint32_t libusb_transfer_get_stream_id(struct libusb_transfer* transfer) {
  return real().libusb_transfer_get_stream_id(transfer);
}

USBNET_EXPORT int libusb_control_transfer(libusb_device_handle* dev_handle, uint8_t request_type,
                                          uint8_t bRequest, uint16_t wValue, uint16_t wIndex,
                                          unsigned char* data, uint16_t wLength,
                                          unsigned int timeout) {
  RemoteHandle* handle = RemoteHandle::from(dev_handle);
  if (!handle) {
    return real().libusb_control_transfer(dev_handle, request_type, bRequest, wValue, wIndex, data,
                                          wLength, timeout);
  }
  return with_libusb_errno(guarded(int{LIBUSB_ERROR_NO_MEM}, [&] {
    return remote_control_transfer(*handle, request_type, bRequest, wValue, wIndex, data, wLength,
                                   timeout);
  }));
}

USBNET_EXPORT int libusb_bulk_transfer(libusb_device_handle* dev_handle, unsigned char endpoint,
                                       unsigned char* data, int length, int* transferred,
                                       unsigned int timeout) {
  RemoteHandle* handle = RemoteHandle::from(dev_handle);
  if (!handle) {
    return real().libusb_bulk_transfer(dev_handle, endpoint, data, length, transferred, timeout);
  }
  return with_libusb_errno(guarded(int{LIBUSB_ERROR_NO_MEM}, [&] {
    return remote_bulk_or_interrupt_transfer(*handle, endpoint, data, length, transferred, timeout,
                                             LIBUSB_TRANSFER_TYPE_BULK);
  }));
}

USBNET_EXPORT int libusb_interrupt_transfer(libusb_device_handle* dev_handle,
                                            unsigned char endpoint, unsigned char* data, int length,
                                            int* transferred, unsigned int timeout) {
  RemoteHandle* handle = RemoteHandle::from(dev_handle);
  if (!handle) {
    return real().libusb_interrupt_transfer(dev_handle, endpoint, data, length, transferred,
                                            timeout);
  }
  return with_libusb_errno(guarded(int{LIBUSB_ERROR_NO_MEM}, [&] {
    return remote_bulk_or_interrupt_transfer(*handle, endpoint, data, length, transferred, timeout,
                                             LIBUSB_TRANSFER_TYPE_INTERRUPT);
  }));
}
