// Device lists, device properties and descriptors.
#include <cstdlib>
#include <cstring>
#include <vector>

#include "interpose/api.h"
#include "interpose/descriptors/descriptors.h"
#include "interpose/objects.h"
#include "interpose/remote_device.h"
#include "interpose/remote_transfer.h"

using namespace usbnet;
using namespace usbnet::interpose;

namespace {

// Parses one of a remote device's raw configuration descriptors for the program. Like libusb on
// Linux: by index and for the active configuration, the first min(wTotalLength, cached length)
// bytes are parsed; by value, the whole cached length.
enum class Length { UpToTotal, Whole };
int parse_config_for_program(const wire::Bytes& raw, Length length,
                             libusb_config_descriptor** config) {
  if (raw.size() < LIBUSB_DT_CONFIG_SIZE) return LIBUSB_ERROR_IO;
  std::size_t n = raw.size();
  if (length == Length::UpToTotal) n = std::min<std::size_t>(n, raw[2] | (raw[3] << 8));
  auto parsed = parse_config_descriptor(RawDescriptor(raw.data(), n));
  if (!parsed) return parsed.error();
  allocations().add(*parsed);
  *config = *parsed;
  return LIBUSB_SUCCESS;
}

const libusb_endpoint_descriptor* find_endpoint(const libusb_config_descriptor* config,
                                                unsigned char address) {
  for (int i = 0; i < config->bNumInterfaces; ++i) {
    const libusb_interface& iface = config->interface[i];
    for (int a = 0; a < iface.num_altsetting; ++a) {
      const libusb_interface_descriptor& alt = iface.altsetting[a];
      for (int e = 0; e < alt.bNumEndpoints; ++e) {
        if (alt.endpoint[e].bEndpointAddress == address) return &alt.endpoint[e];
      }
    }
  }
  return nullptr;
}

struct ConfigFreer {
  void operator()(libusb_config_descriptor* c) const { libusb_free_config_descriptor(c); }
};
using UniqueConfig = std::unique_ptr<libusb_config_descriptor, ConfigFreer>;

}  // namespace

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
  if (RemoteDevice* device = RemoteDevice::from(dev)) return device->ref()->as_libusb();
  return real().libusb_ref_device(dev);
}

USBNET_EXPORT void libusb_unref_device(libusb_device* dev) {
  if (RemoteDevice* device = RemoteDevice::from(dev)) return device->unref();
  real().libusb_unref_device(dev);
}

USBNET_EXPORT int libusb_wrap_sys_device(libusb_context* ctx, intptr_t sys_dev,
                                         libusb_device_handle** dev_handle) {
  return real().libusb_wrap_sys_device(real_context_of(ctx), sys_dev, dev_handle);
}

// ---- where a device is --------------------------------------------------------------------------

USBNET_EXPORT uint8_t libusb_get_bus_number(libusb_device* dev) {
  if (RemoteDevice* device = RemoteDevice::from(dev)) return device->bus_number();
  return real().libusb_get_bus_number(dev);
}

USBNET_EXPORT uint8_t libusb_get_device_address(libusb_device* dev) {
  if (RemoteDevice* device = RemoteDevice::from(dev)) return device->info().device_address;
  return real().libusb_get_device_address(dev);
}

USBNET_EXPORT int libusb_get_device_speed(libusb_device* dev) {
  if (RemoteDevice* device = RemoteDevice::from(dev)) return device->info().speed;
  return real().libusb_get_device_speed(dev);
}

USBNET_EXPORT uint8_t libusb_get_port_number(libusb_device* dev) {
  if (RemoteDevice* device = RemoteDevice::from(dev)) {
    const auto& ports = device->info().port_numbers;
    return ports.empty() ? 0 : ports.back();
  }
  return real().libusb_get_port_number(dev);
}

USBNET_EXPORT int libusb_get_port_numbers(libusb_device* dev, uint8_t* port_numbers,
                                          int port_numbers_len) {
  RemoteDevice* device = RemoteDevice::from(dev);
  if (!device) return real().libusb_get_port_numbers(dev, port_numbers, port_numbers_len);
  const auto& ports = device->info().port_numbers;
  if (port_numbers_len <= 0) return LIBUSB_ERROR_INVALID_PARAM;
  if (static_cast<std::size_t>(port_numbers_len) < ports.size()) return LIBUSB_ERROR_OVERFLOW;
  std::copy(ports.begin(), ports.end(), port_numbers);
  return static_cast<int>(ports.size());
}

USBNET_EXPORT int libusb_get_port_path(libusb_context* ctx, libusb_device* dev, uint8_t* path,
                                       uint8_t path_length) {
  if (RemoteDevice::from(dev)) return libusb_get_port_numbers(dev, path, path_length);
  return real().libusb_get_port_path(real_context_of(ctx), dev, path, path_length);
}

USBNET_EXPORT libusb_device* libusb_get_parent(libusb_device* dev) {
  // The agent lists the hubs above its devices: the parent is one of the context's remote
  // devices (NULL for a root hub, or once the hub has left).
  if (RemoteDevice* device = RemoteDevice::from(dev)) return device->context().parent_of(*device);
  return real().libusb_get_parent(dev);
}

// ---- descriptors ------------------------------------------------------------------------------

USBNET_EXPORT int libusb_get_device_descriptor(libusb_device* dev,
                                               struct libusb_device_descriptor* desc) {
  RemoteDevice* device = RemoteDevice::from(dev);
  if (!device) return real().libusb_get_device_descriptor(dev, desc);
  *desc = parse_device_descriptor(device->info().device_descriptor);
  return LIBUSB_SUCCESS;
}

USBNET_EXPORT int libusb_get_config_descriptor(libusb_device* dev, uint8_t config_index,
                                               struct libusb_config_descriptor** config) {
  RemoteDevice* device = RemoteDevice::from(dev);
  if (!device) return real().libusb_get_config_descriptor(dev, config_index, config);
  return guarded(int{LIBUSB_ERROR_NO_MEM}, [&] {
    const auto& configs = device->info().configs;
    if (config_index >= device->info().device_descriptor[17]) return int{LIBUSB_ERROR_NOT_FOUND};
    if (config_index >= configs.size()) return int{LIBUSB_ERROR_IO};  // the agent could not read it
    return parse_config_for_program(configs[config_index], Length::UpToTotal, config);
  });
}

USBNET_EXPORT int libusb_get_config_descriptor_by_value(libusb_device* dev,
                                                        uint8_t bConfigurationValue,
                                                        struct libusb_config_descriptor** config) {
  RemoteDevice* device = RemoteDevice::from(dev);
  if (!device)
    return real().libusb_get_config_descriptor_by_value(dev, bConfigurationValue, config);
  return guarded(int{LIBUSB_ERROR_NO_MEM}, [&] {
    for (const wire::Bytes& raw : device->info().configs) {
      if (raw.size() > 5 && raw[5] == bConfigurationValue) {
        return parse_config_for_program(raw, Length::Whole, config);
      }
    }
    return int{LIBUSB_ERROR_NOT_FOUND};
  });
}

USBNET_EXPORT int libusb_get_active_config_descriptor(libusb_device* dev,
                                                      struct libusb_config_descriptor** config) {
  RemoteDevice* device = RemoteDevice::from(dev);
  if (!device) return real().libusb_get_active_config_descriptor(dev, config);
  const std::uint8_t active = device->active_config();
  if (active == 0) return LIBUSB_ERROR_NOT_FOUND;  // unconfigured, as libusb reports it
  return guarded(int{LIBUSB_ERROR_NO_MEM}, [&] {
    for (const wire::Bytes& raw : device->info().configs) {
      if (raw.size() > 5 && raw[5] == active) {
        return parse_config_for_program(raw, Length::UpToTotal, config);
      }
    }
    return int{LIBUSB_ERROR_NOT_FOUND};
  });
}

USBNET_EXPORT void libusb_free_config_descriptor(struct libusb_config_descriptor* config) {
  if (!config) return;
  if (allocations().remove(config)) return free_config_descriptor(config);
  real().libusb_free_config_descriptor(config);
}

USBNET_EXPORT int libusb_get_bos_descriptor(libusb_device_handle* dev_handle,
                                            struct libusb_bos_descriptor** bos) {
  RemoteHandle* handle = RemoteHandle::from(dev_handle);
  if (!handle) return real().libusb_get_bos_descriptor(dev_handle, bos);
  return guarded(int{LIBUSB_ERROR_NO_MEM}, [&] {
    // As libusb: read the header, then the whole descriptor, from the device itself.
    unsigned char header[LIBUSB_DT_BOS_SIZE];
    int r = remote_control_transfer(*handle, LIBUSB_ENDPOINT_IN, LIBUSB_REQUEST_GET_DESCRIPTOR,
                                    LIBUSB_DT_BOS << 8, 0, header, sizeof header, 1000);
    if (r < 0) return r;
    if (r < LIBUSB_DT_BOS_SIZE) return int{LIBUSB_ERROR_IO};
    const std::uint16_t total = static_cast<std::uint16_t>(header[2] | (header[3] << 8));
    std::vector<unsigned char> raw(std::max<std::size_t>(total, LIBUSB_DT_BOS_SIZE));
    r = remote_control_transfer(*handle, LIBUSB_ENDPOINT_IN, LIBUSB_REQUEST_GET_DESCRIPTOR,
                                LIBUSB_DT_BOS << 8, 0, raw.data(),
                                static_cast<std::uint16_t>(raw.size()), 1000);
    if (r < 0) return r;
    raw.resize(static_cast<std::size_t>(r));
    auto parsed = parse_bos_descriptor(raw);
    if (!parsed) return parsed.error();
    allocations().add(*parsed);
    *bos = *parsed;
    return int{LIBUSB_SUCCESS};
  });
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

// As libusb computes them, from the active configuration.
USBNET_EXPORT int libusb_get_max_packet_size(libusb_device* dev, unsigned char endpoint) {
  if (!RemoteDevice::from(dev)) return real().libusb_get_max_packet_size(dev, endpoint);
  libusb_config_descriptor* raw = nullptr;
  if (libusb_get_active_config_descriptor(dev, &raw) < 0) return LIBUSB_ERROR_OTHER;
  UniqueConfig config(raw);
  const libusb_endpoint_descriptor* ep = find_endpoint(config.get(), endpoint);
  return ep ? int{ep->wMaxPacketSize} : int{LIBUSB_ERROR_NOT_FOUND};
}

USBNET_EXPORT int libusb_get_max_iso_packet_size(libusb_device* dev, unsigned char endpoint) {
  RemoteDevice* device = RemoteDevice::from(dev);
  if (!device) return real().libusb_get_max_iso_packet_size(dev, endpoint);
  libusb_config_descriptor* raw = nullptr;
  if (libusb_get_active_config_descriptor(dev, &raw) < 0) return LIBUSB_ERROR_OTHER;
  UniqueConfig config(raw);
  const libusb_endpoint_descriptor* ep = find_endpoint(config.get(), endpoint);
  if (!ep) return LIBUSB_ERROR_NOT_FOUND;
  int r = LIBUSB_ERROR_NOT_FOUND;
  if (device->info().speed >= LIBUSB_SPEED_SUPER) {
    libusb_ss_endpoint_companion_descriptor* companion = nullptr;
    r = libusb_get_ss_endpoint_companion_descriptor(device->context().as_libusb(), ep, &companion);
    if (r == LIBUSB_SUCCESS) {
      r = companion->wBytesPerInterval;
      libusb_free_ss_endpoint_companion_descriptor(companion);
    }
  }
  if (device->info().speed < LIBUSB_SPEED_SUPER || r < 0) {
    const std::uint16_t value = ep->wMaxPacketSize;
    const int type = ep->bmAttributes & 0x3;
    r = value & 0x07ff;
    if (type == LIBUSB_ENDPOINT_TRANSFER_TYPE_ISOCHRONOUS ||
        type == LIBUSB_ENDPOINT_TRANSFER_TYPE_INTERRUPT) {
      r *= 1 + ((value >> 11) & 3);
    }
  }
  return r;
}
