// Transfers: every transfer comes from the real allocator; those on remote handles are run by
// the remote backend, the others by the real library.
#include "interpose/api.h"
#include "interpose/remote_transfer.h"

using namespace usbnet::interpose;

USBNET_EXPORT struct libusb_transfer* libusb_alloc_transfer(int iso_packets) {
  return real().libusb_alloc_transfer(iso_packets);
}

USBNET_EXPORT void libusb_free_transfer(struct libusb_transfer* transfer) {
  if (!transfer) return;
  // A transfer in flight on a remote device is forgotten first: nothing writes to it later.
  dispatch<&RealLibusb::libusb_free_transfer, &RemoteHandle::free_transfer>(transfer);
}

USBNET_EXPORT int libusb_submit_transfer(struct libusb_transfer* transfer) {
  return dispatch<&RealLibusb::libusb_submit_transfer, &RemoteHandle::submit_transfer>(transfer);
}

USBNET_EXPORT int libusb_cancel_transfer(struct libusb_transfer* transfer) {
  return dispatch<&RealLibusb::libusb_cancel_transfer, &RemoteHandle::cancel_transfer>(transfer);
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
  return dispatch<&RealLibusb::libusb_control_transfer, &RemoteHandle::control_transfer>(
      dev_handle, request_type, bRequest, wValue, wIndex, data, wLength, timeout);
}

USBNET_EXPORT int libusb_bulk_transfer(libusb_device_handle* dev_handle, unsigned char endpoint,
                                       unsigned char* data, int length, int* transferred,
                                       unsigned int timeout) {
  return dispatch<&RealLibusb::libusb_bulk_transfer, &RemoteHandle::bulk_transfer>(
      dev_handle, endpoint, data, length, transferred, timeout);
}

USBNET_EXPORT int libusb_interrupt_transfer(libusb_device_handle* dev_handle,
                                            unsigned char endpoint, unsigned char* data, int length,
                                            int* transferred, unsigned int timeout) {
  return dispatch<&RealLibusb::libusb_interrupt_transfer, &RemoteHandle::interrupt_transfer>(
      dev_handle, endpoint, data, length, transferred, timeout);
}
