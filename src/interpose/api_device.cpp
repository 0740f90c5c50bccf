// Device lists, device properties and descriptors: libusb's argument checks, then dispatch().
#include <cstdlib>
#include <vector>

#include "interpose/api.h"
#include "interpose/descriptors/descriptors.h"
#include "interpose/objects.h"

using namespace usbnet;
using namespace usbnet::interpose;

// ---- device lists and references --------------------------------------------------------------

USBNET_EXPORT ssize_t libusb_get_device_list(libusb_context* ctx, libusb_device*** list) {
  if (ctx && !Context::from(ctx)) return real().libusb_get_device_list(ctx, list);
  Context* context = our_context(ctx);
  if (!context) return real().libusb_get_device_list(ctx, list);
  return guarded(ssize_t{LIBUSB_ERROR_NO_MEM}, [&]() -> ssize_t {
    // Remote devices first: USBNET_DEVICES says the user wants those, so that
    // libusb_open_device_with_vid_pid and "first match" loops pick them.
    std::vector<libusb_device*> all;
    for (RemoteDevice* d : context->remote_devices()) all.push_back(d->as_libusb());
    libusb_device** local = nullptr;
    ssize_t n = 0;
    if (context->real_context()) {
      n = real().libusb_get_device_list(context->real_context(), &local);
      if (n < 0) {
        for (libusb_device* d : all) RemoteDevice::from(d)->unref();
        return n;
      }
      all.insert(all.end(), local, local + n);
      real().libusb_free_device_list(local, 0);  // the references pass to our list
    }
    auto** block =
        static_cast<libusb_device**>(std::calloc(all.size() + 1, sizeof(libusb_device*)));
    if (!block) {
      for (libusb_device* d : all) libusb_unref_device(d);
      return LIBUSB_ERROR_NO_MEM;
    }
    std::copy(all.begin(), all.end(), block);
    allocations().add(block);
    *list = block;
    return static_cast<ssize_t>(all.size());
  });
}

USBNET_EXPORT void libusb_free_device_list(libusb_device** list, int unref_devices) {
  if (!list) return;
  if (!allocations().remove(list)) return real().libusb_free_device_list(list, unref_devices);
  if (unref_devices) {
    for (libusb_device** d = list; *d; ++d) libusb_unref_device(*d);
  }
  std::free(list);
}

USBNET_EXPORT libusb_device* libusb_ref_device(libusb_device* dev) {
  return dispatch<&RealLibusb::libusb_ref_device, &RemoteDevice::ref_device>(dev);
}

USBNET_EXPORT void libusb_unref_device(libusb_device* dev) {
  dispatch<&RealLibusb::libusb_unref_device, &RemoteDevice::unref_device>(dev);
}

USBNET_EXPORT int libusb_wrap_sys_device(libusb_context* ctx, intptr_t sys_dev,
                                         libusb_device_handle** dev_handle) {
  return real().libusb_wrap_sys_device(real_context_of(ctx), sys_dev, dev_handle);
}

// ---- where a device is --------------------------------------------------------------------------

USBNET_EXPORT uint8_t libusb_get_bus_number(libusb_device* dev) {
  return dispatch<&RealLibusb::libusb_get_bus_number, &RemoteDevice::get_bus_number>(dev);
}

USBNET_EXPORT uint8_t libusb_get_device_address(libusb_device* dev) {
  return dispatch<&RealLibusb::libusb_get_device_address, &RemoteDevice::get_device_address>(dev);
}

USBNET_EXPORT int libusb_get_device_speed(libusb_device* dev) {
  return dispatch<&RealLibusb::libusb_get_device_speed, &RemoteDevice::get_device_speed>(dev);
}

USBNET_EXPORT uint8_t libusb_get_port_number(libusb_device* dev) {
  return dispatch<&RealLibusb::libusb_get_port_number, &RemoteDevice::get_port_number>(dev);
}

USBNET_EXPORT int libusb_get_port_numbers(libusb_device* dev, uint8_t* port_numbers,
                                          int port_numbers_len) {
  if (port_numbers_len <= 0) return LIBUSB_ERROR_INVALID_PARAM;
  return dispatch<&RealLibusb::libusb_get_port_numbers, &RemoteDevice::get_port_numbers>(
      dev, port_numbers, port_numbers_len);
}

USBNET_EXPORT int libusb_get_port_path(libusb_context*, libusb_device* dev, uint8_t* path,
                                       uint8_t path_length) {
  return libusb_get_port_numbers(dev, path, path_length);  // as libusb: the context is unused
}

USBNET_EXPORT libusb_device* libusb_get_parent(libusb_device* dev) {
  return dispatch<&RealLibusb::libusb_get_parent, &RemoteDevice::get_parent>(dev);
}

// ---- descriptors ------------------------------------------------------------------------------

USBNET_EXPORT int libusb_get_device_descriptor(libusb_device* dev,
                                               struct libusb_device_descriptor* desc) {
  return dispatch<&RealLibusb::libusb_get_device_descriptor, &RemoteDevice::get_device_descriptor>(
      dev, desc);
}

USBNET_EXPORT int libusb_get_config_descriptor(libusb_device* dev, uint8_t config_index,
                                               struct libusb_config_descriptor** config) {
  return dispatch<&RealLibusb::libusb_get_config_descriptor, &RemoteDevice::get_config_descriptor>(
      dev, config_index, config);
}

USBNET_EXPORT int libusb_get_config_descriptor_by_value(libusb_device* dev,
                                                        uint8_t bConfigurationValue,
                                                        struct libusb_config_descriptor** config) {
  return dispatch<&RealLibusb::libusb_get_config_descriptor_by_value,
                  &RemoteDevice::get_config_descriptor_by_value>(dev, bConfigurationValue, config);
}

USBNET_EXPORT int libusb_get_active_config_descriptor(libusb_device* dev,
                                                      struct libusb_config_descriptor** config) {
  return dispatch<&RealLibusb::libusb_get_active_config_descriptor,
                  &RemoteDevice::get_active_config_descriptor>(dev, config);
}

USBNET_EXPORT void libusb_free_config_descriptor(struct libusb_config_descriptor* config) {
  if (!config) return;
  if (allocations().remove(config)) return free_config_descriptor(config);
  real().libusb_free_config_descriptor(config);
}

USBNET_EXPORT int libusb_get_bos_descriptor(libusb_device_handle* dev_handle,
                                            struct libusb_bos_descriptor** bos) {
  return dispatch<&RealLibusb::libusb_get_bos_descriptor, &RemoteHandle::get_bos_descriptor>(
      dev_handle, bos);
}

USBNET_EXPORT void libusb_free_bos_descriptor(struct libusb_bos_descriptor* bos) {
  if (!bos) return;
  if (allocations().remove(bos)) return free_bos_descriptor(bos);
  real().libusb_free_bos_descriptor(bos);
}

// These parse from structs already in memory: the real library does it for both kinds.
USBNET_EXPORT int libusb_get_ss_endpoint_companion_descriptor(
    libusb_context* ctx, const struct libusb_endpoint_descriptor* endpoint,
    struct libusb_ss_endpoint_companion_descriptor** ep_comp) {
  return real().libusb_get_ss_endpoint_companion_descriptor(real_context_of(ctx), endpoint,
                                                            ep_comp);
}

USBNET_EXPORT void libusb_free_ss_endpoint_companion_descriptor(
    struct libusb_ss_endpoint_companion_descriptor* ep_comp) {
  real().libusb_free_ss_endpoint_companion_descriptor(ep_comp);
}

USBNET_EXPORT int libusb_get_usb_2_0_extension_descriptor(
    libusb_context* ctx, struct libusb_bos_dev_capability_descriptor* dev_cap,
    struct libusb_usb_2_0_extension_descriptor** usb_2_0_extension) {
  return real().libusb_get_usb_2_0_extension_descriptor(real_context_of(ctx), dev_cap,
                                                        usb_2_0_extension);
}

USBNET_EXPORT void libusb_free_usb_2_0_extension_descriptor(
    struct libusb_usb_2_0_extension_descriptor* usb_2_0_extension) {
  real().libusb_free_usb_2_0_extension_descriptor(usb_2_0_extension);
}

USBNET_EXPORT int libusb_get_ss_usb_device_capability_descriptor(
    libusb_context* ctx, struct libusb_bos_dev_capability_descriptor* dev_cap,
    struct libusb_ss_usb_device_capability_descriptor** ss_usb_device_cap) {
  return real().libusb_get_ss_usb_device_capability_descriptor(real_context_of(ctx), dev_cap,
                                                               ss_usb_device_cap);
}

USBNET_EXPORT void libusb_free_ss_usb_device_capability_descriptor(
    struct libusb_ss_usb_device_capability_descriptor* ss_usb_device_cap) {
  real().libusb_free_ss_usb_device_capability_descriptor(ss_usb_device_cap);
}

USBNET_EXPORT int libusb_get_container_id_descriptor(
    libusb_context* ctx, struct libusb_bos_dev_capability_descriptor* dev_cap,
    struct libusb_container_id_descriptor** container_id) {
  return real().libusb_get_container_id_descriptor(real_context_of(ctx), dev_cap, container_id);
}

USBNET_EXPORT void libusb_free_container_id_descriptor(
    struct libusb_container_id_descriptor* container_id) {
  real().libusb_free_container_id_descriptor(container_id);
}

USBNET_EXPORT int libusb_get_max_packet_size(libusb_device* dev, unsigned char endpoint) {
  return dispatch<&RealLibusb::libusb_get_max_packet_size, &RemoteDevice::get_max_packet_size>(
      dev, endpoint);
}

USBNET_EXPORT int libusb_get_max_iso_packet_size(libusb_device* dev, unsigned char endpoint) {
  return dispatch<&RealLibusb::libusb_get_max_iso_packet_size,
                  &RemoteDevice::get_max_iso_packet_size>(dev, endpoint);
}
