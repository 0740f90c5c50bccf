// Opening devices and the requests on their handles: libusb's argument checks, then dispatch().
#include "interpose/api.h"

using namespace usbnet;
using namespace usbnet::interpose;

namespace {

constexpr int kMaxInterfaces = 32;  // libusb's USB_MAXINTERFACES

bool valid_interface(int interface_number) {
  return interface_number >= 0 && interface_number < kMaxInterfaces;
}

}  // namespace

USBNET_EXPORT int libusb_open(libusb_device* dev, libusb_device_handle** dev_handle) {
  return dispatch<&RealLibusb::libusb_open, &RemoteDevice::open>(dev, dev_handle);
}

USBNET_EXPORT libusb_device_handle* libusb_open_device_with_vid_pid(libusb_context* ctx,
                                                                    uint16_t vendor_id,
                                                                    uint16_t product_id) {
  if (ctx && !Context::from(ctx)) {
    return real().libusb_open_device_with_vid_pid(ctx, vendor_id, product_id);
  }
  libusb_device** list = nullptr;
  if (libusb_get_device_list(ctx, &list) < 0) return nullptr;
  libusb_device_handle* handle = nullptr;
  for (libusb_device** d = list; *d; ++d) {
    libusb_device_descriptor desc{};
    if (libusb_get_device_descriptor(*d, &desc) != LIBUSB_SUCCESS) continue;
    if (desc.idVendor == vendor_id && desc.idProduct == product_id) {
      if (libusb_open(*d, &handle) != LIBUSB_SUCCESS) handle = nullptr;
      break;
    }
  }
  libusb_free_device_list(list, 1);
  return handle;
}

USBNET_EXPORT void libusb_close(libusb_device_handle* dev_handle) {
  dispatch<&RealLibusb::libusb_close, &RemoteHandle::close>(dev_handle);
}

USBNET_EXPORT libusb_device* libusb_get_device(libusb_device_handle* dev_handle) {
  return dispatch<&RealLibusb::libusb_get_device, &RemoteHandle::get_device>(dev_handle);
}

USBNET_EXPORT int libusb_get_configuration(libusb_device_handle* dev_handle, int* config) {
  return dispatch<&RealLibusb::libusb_get_configuration, &RemoteHandle::get_configuration>(
      dev_handle, config);
}

USBNET_EXPORT int libusb_set_configuration(libusb_device_handle* dev_handle, int configuration) {
  if (configuration < -1 || configuration > 255) return LIBUSB_ERROR_INVALID_PARAM;
  return dispatch<&RealLibusb::libusb_set_configuration, &RemoteHandle::set_configuration>(
      dev_handle, configuration);
}

USBNET_EXPORT int libusb_claim_interface(libusb_device_handle* dev_handle, int interface_number) {
  if (!valid_interface(interface_number)) return LIBUSB_ERROR_INVALID_PARAM;
  return dispatch<&RealLibusb::libusb_claim_interface, &RemoteHandle::claim_interface>(
      dev_handle, interface_number);
}

USBNET_EXPORT int libusb_release_interface(libusb_device_handle* dev_handle, int interface_number) {
  if (!valid_interface(interface_number)) return LIBUSB_ERROR_INVALID_PARAM;
  return dispatch<&RealLibusb::libusb_release_interface, &RemoteHandle::release_interface>(
      dev_handle, interface_number);
}

USBNET_EXPORT int libusb_set_interface_alt_setting(libusb_device_handle* dev_handle,
                                                   int interface_number, int alternate_setting) {
  if (!valid_interface(interface_number) || alternate_setting < 0 || alternate_setting > 255) {
    return LIBUSB_ERROR_INVALID_PARAM;
  }
  return dispatch<&RealLibusb::libusb_set_interface_alt_setting,
                  &RemoteHandle::set_interface_alt_setting>(dev_handle, interface_number,
                                                            alternate_setting);
}

USBNET_EXPORT int libusb_clear_halt(libusb_device_handle* dev_handle, unsigned char endpoint) {
  return dispatch<&RealLibusb::libusb_clear_halt, &RemoteHandle::clear_halt>(dev_handle, endpoint);
}

USBNET_EXPORT int libusb_reset_device(libusb_device_handle* dev_handle) {
  return dispatch<&RealLibusb::libusb_reset_device, &RemoteHandle::reset_device>(dev_handle);
}

USBNET_EXPORT int libusb_kernel_driver_active(libusb_device_handle* dev_handle,
                                              int interface_number) {
  if (!valid_interface(interface_number)) return LIBUSB_ERROR_INVALID_PARAM;
  return dispatch<&RealLibusb::libusb_kernel_driver_active, &RemoteHandle::kernel_driver_active>(
      dev_handle, interface_number);
}

USBNET_EXPORT int libusb_detach_kernel_driver(libusb_device_handle* dev_handle,
                                              int interface_number) {
  if (!valid_interface(interface_number)) return LIBUSB_ERROR_INVALID_PARAM;
  return dispatch<&RealLibusb::libusb_detach_kernel_driver, &RemoteHandle::detach_kernel_driver>(
      dev_handle, interface_number);
}

USBNET_EXPORT int libusb_attach_kernel_driver(libusb_device_handle* dev_handle,
                                              int interface_number) {
  if (!valid_interface(interface_number)) return LIBUSB_ERROR_INVALID_PARAM;
  return dispatch<&RealLibusb::libusb_attach_kernel_driver, &RemoteHandle::attach_kernel_driver>(
      dev_handle, interface_number);
}

USBNET_EXPORT int libusb_set_auto_detach_kernel_driver(libusb_device_handle* dev_handle,
                                                       int enable) {
  return dispatch<&RealLibusb::libusb_set_auto_detach_kernel_driver,
                  &RemoteHandle::set_auto_detach_kernel_driver>(dev_handle, enable);
}

USBNET_EXPORT int libusb_alloc_streams(libusb_device_handle* dev_handle, uint32_t num_streams,
                                       unsigned char* endpoints, int num_endpoints) {
  return dispatch<&RealLibusb::libusb_alloc_streams, &RemoteHandle::alloc_streams>(
      dev_handle, num_streams, endpoints, num_endpoints);
}

USBNET_EXPORT int libusb_free_streams(libusb_device_handle* dev_handle, unsigned char* endpoints,
                                      int num_endpoints) {
  return dispatch<&RealLibusb::libusb_free_streams, &RemoteHandle::free_streams>(
      dev_handle, endpoints, num_endpoints);
}

USBNET_EXPORT unsigned char* libusb_dev_mem_alloc(libusb_device_handle* dev_handle, size_t length) {
  return dispatch<&RealLibusb::libusb_dev_mem_alloc, &RemoteHandle::dev_mem_alloc>(dev_handle,
                                                                                   length);
}

USBNET_EXPORT int libusb_dev_mem_free(libusb_device_handle* dev_handle, unsigned char* buffer,
                                      size_t length) {
  return dispatch<&RealLibusb::libusb_dev_mem_free, &RemoteHandle::dev_mem_free>(dev_handle, buffer,
                                                                                 length);
}

USBNET_EXPORT int libusb_get_string_descriptor_ascii(libusb_device_handle* dev_handle,
                                                     uint8_t desc_index, unsigned char* data,
                                                     int length) {
  if (desc_index == 0) return LIBUSB_ERROR_INVALID_PARAM;  // as libusb: 0 is not a string
  return dispatch<&RealLibusb::libusb_get_string_descriptor_ascii,
                  &RemoteHandle::get_string_descriptor_ascii>(dev_handle, desc_index, data, length);
}
