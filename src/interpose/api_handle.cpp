// Opening remote devices and the requests on their handles.
#include <cstring>
#include <vector>

#include "interpose/agent_link.h"
#include "interpose/api.h"
#include "interpose/remote_device.h"
#include "interpose/remote_transfer.h"

using namespace usbnet;
using namespace usbnet::interpose;

namespace {

constexpr int kMaxInterfaces = 32;  // libusb's USB_MAXINTERFACES

// Sends a device request for a remote handle; the REPLY value or a libusb error code.
Expected<std::uint32_t, std::int32_t> ask(RemoteHandle& handle, wire::Message request) {
  if (handle.device().gone()) return Unexpected{std::int32_t{LIBUSB_ERROR_NO_DEVICE}};
  std::visit(
      [&](auto& m) {
        if constexpr (requires { m.handle; }) m.handle = handle.id();
      },
      request);
  return handle.device().link().client().request(std::move(request));
}

int result_of(const Expected<std::uint32_t, std::int32_t>& r) {
  return r ? LIBUSB_SUCCESS : r.error();
}

}  // namespace

USBNET_EXPORT int libusb_open(libusb_device* dev, libusb_device_handle** dev_handle) {
  RemoteDevice* device = RemoteDevice::from(dev);
  if (!device) return real().libusb_open(dev, dev_handle);
  return guarded(int{LIBUSB_ERROR_NO_MEM}, [&] {
    if (device->gone()) return int{LIBUSB_ERROR_NO_DEVICE};
    auto opened = device->link().client().request(wire::Open{0, device->device_id()});
    if (!opened) return static_cast<int>(opened.error());
    *dev_handle = (new RemoteHandle(*device, *opened))->as_libusb();  // freed by libusb_close
    return int{LIBUSB_SUCCESS};
  });
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
  RemoteHandle* handle = RemoteHandle::from(dev_handle);
  if (!handle) return real().libusb_close(dev_handle);
  guarded_void([&] {
    if (!handle->device().gone()) {
      if (auto r = ask(*handle, wire::Close{}); !r) {
        log::debug("closing a remote handle: {}", wire::error_code_name(r.error()));
      }
    }
    delete handle;
  });
}

USBNET_EXPORT libusb_device* libusb_get_device(libusb_device_handle* dev_handle) {
  if (RemoteHandle* handle = RemoteHandle::from(dev_handle)) return handle->device().as_libusb();
  return real().libusb_get_device(dev_handle);
}

USBNET_EXPORT int libusb_get_configuration(libusb_device_handle* dev_handle, int* config) {
  RemoteHandle* handle = RemoteHandle::from(dev_handle);
  if (!handle) return real().libusb_get_configuration(dev_handle, config);
  return guarded(int{LIBUSB_ERROR_NO_MEM}, [&] {
    auto r = ask(*handle, wire::GetConfiguration{});
    if (r) {
      *config = static_cast<int>(*r);
      handle->device().set_active_config(static_cast<std::uint8_t>(*r));
    }
    return result_of(r);
  });
}

USBNET_EXPORT int libusb_set_configuration(libusb_device_handle* dev_handle, int configuration) {
  RemoteHandle* handle = RemoteHandle::from(dev_handle);
  if (!handle) return real().libusb_set_configuration(dev_handle, configuration);
  return guarded(int{LIBUSB_ERROR_NO_MEM}, [&] {
    if (configuration < -1 || configuration > 255) return int{LIBUSB_ERROR_INVALID_PARAM};
    auto r = ask(*handle, wire::SetConfiguration{0, 0, configuration});
    if (r) {
      handle->device().set_active_config(
          static_cast<std::uint8_t>(configuration < 0 ? 0 : configuration));
    }
    return result_of(r);
  });
}

USBNET_EXPORT int libusb_claim_interface(libusb_device_handle* dev_handle, int interface_number) {
  RemoteHandle* handle = RemoteHandle::from(dev_handle);
  if (!handle) return real().libusb_claim_interface(dev_handle, interface_number);
  return guarded(int{LIBUSB_ERROR_NO_MEM}, [&] {
    if (interface_number < 0 || interface_number >= kMaxInterfaces) {
      return int{LIBUSB_ERROR_INVALID_PARAM};
    }
    if (handle->claimed(interface_number)) return int{LIBUSB_SUCCESS};
    const auto iface = static_cast<std::uint8_t>(interface_number);
    if (handle->auto_detach()) {
      // As libusb on Linux: a driver that is not there is no failure.
      auto r = ask(*handle, wire::KernelDriver{0, 0, wire::KernelDriverOp::Detach, iface});
      if (!r && r.error() != LIBUSB_ERROR_NOT_FOUND) return static_cast<int>(r.error());
    }
    auto r = ask(*handle, wire::ClaimInterface{0, 0, iface});
    if (r) handle->set_claimed(interface_number, true);
    return result_of(r);
  });
}

USBNET_EXPORT int libusb_release_interface(libusb_device_handle* dev_handle, int interface_number) {
  RemoteHandle* handle = RemoteHandle::from(dev_handle);
  if (!handle) return real().libusb_release_interface(dev_handle, interface_number);
  return guarded(int{LIBUSB_ERROR_NO_MEM}, [&] {
    if (interface_number < 0 || interface_number >= kMaxInterfaces) {
      return int{LIBUSB_ERROR_INVALID_PARAM};
    }
    if (!handle->claimed(interface_number)) return int{LIBUSB_ERROR_NOT_FOUND};
    const auto iface = static_cast<std::uint8_t>(interface_number);
    auto r = ask(*handle, wire::ReleaseInterface{0, 0, iface});
    if (r || r.error() == LIBUSB_ERROR_NO_DEVICE) handle->set_claimed(interface_number, false);
    if (r && handle->auto_detach()) {
      ask(*handle, wire::KernelDriver{0, 0, wire::KernelDriverOp::Attach, iface});
    }
    return result_of(r);
  });
}

USBNET_EXPORT int libusb_set_interface_alt_setting(libusb_device_handle* dev_handle,
                                                   int interface_number, int alternate_setting) {
  RemoteHandle* handle = RemoteHandle::from(dev_handle);
  if (!handle) {
    return real().libusb_set_interface_alt_setting(dev_handle, interface_number, alternate_setting);
  }
  return guarded(int{LIBUSB_ERROR_NO_MEM}, [&] {
    if (interface_number < 0 || interface_number >= kMaxInterfaces || alternate_setting < 0 ||
        alternate_setting > 255) {
      return int{LIBUSB_ERROR_INVALID_PARAM};
    }
    if (!handle->claimed(interface_number)) return int{LIBUSB_ERROR_NOT_FOUND};
    return result_of(
        ask(*handle, wire::SetAltSetting{0, 0, static_cast<std::uint8_t>(interface_number),
                                         static_cast<std::uint8_t>(alternate_setting)}));
  });
}

USBNET_EXPORT int libusb_clear_halt(libusb_device_handle* dev_handle, unsigned char endpoint) {
  RemoteHandle* handle = RemoteHandle::from(dev_handle);
  if (!handle) return real().libusb_clear_halt(dev_handle, endpoint);
  return guarded(int{LIBUSB_ERROR_NO_MEM}, [&] {
    return result_of(ask(*handle, wire::ClearHalt{0, 0, endpoint}));
  });
}

USBNET_EXPORT int libusb_reset_device(libusb_device_handle* dev_handle) {
  RemoteHandle* handle = RemoteHandle::from(dev_handle);
  if (!handle) return real().libusb_reset_device(dev_handle);
  return guarded(int{LIBUSB_ERROR_NO_MEM},
                 [&] { return result_of(ask(*handle, wire::ResetDevice{})); });
}

USBNET_EXPORT int libusb_kernel_driver_active(libusb_device_handle* dev_handle,
                                              int interface_number) {
  RemoteHandle* handle = RemoteHandle::from(dev_handle);
  if (!handle) return real().libusb_kernel_driver_active(dev_handle, interface_number);
  return guarded(int{LIBUSB_ERROR_NO_MEM}, [&] {
    if (interface_number < 0 || interface_number > 255) return int{LIBUSB_ERROR_INVALID_PARAM};
    auto r = ask(*handle, wire::KernelDriver{0, 0, wire::KernelDriverOp::Query,
                                             static_cast<std::uint8_t>(interface_number)});
    return r ? static_cast<int>(*r) : static_cast<int>(r.error());
  });
}

USBNET_EXPORT int libusb_detach_kernel_driver(libusb_device_handle* dev_handle,
                                              int interface_number) {
  RemoteHandle* handle = RemoteHandle::from(dev_handle);
  if (!handle) return real().libusb_detach_kernel_driver(dev_handle, interface_number);
  return guarded(int{LIBUSB_ERROR_NO_MEM}, [&] {
    if (interface_number < 0 || interface_number > 255) return int{LIBUSB_ERROR_INVALID_PARAM};
    return result_of(ask(*handle, wire::KernelDriver{0, 0, wire::KernelDriverOp::Detach,
                                                     static_cast<std::uint8_t>(interface_number)}));
  });
}

USBNET_EXPORT int libusb_attach_kernel_driver(libusb_device_handle* dev_handle,
                                              int interface_number) {
  RemoteHandle* handle = RemoteHandle::from(dev_handle);
  if (!handle) return real().libusb_attach_kernel_driver(dev_handle, interface_number);
  return guarded(int{LIBUSB_ERROR_NO_MEM}, [&] {
    if (interface_number < 0 || interface_number > 255) return int{LIBUSB_ERROR_INVALID_PARAM};
    return result_of(ask(*handle, wire::KernelDriver{0, 0, wire::KernelDriverOp::Attach,
                                                     static_cast<std::uint8_t>(interface_number)}));
  });
}

USBNET_EXPORT int libusb_set_auto_detach_kernel_driver(libusb_device_handle* dev_handle,
                                                       int enable) {
  RemoteHandle* handle = RemoteHandle::from(dev_handle);
  if (!handle) return real().libusb_set_auto_detach_kernel_driver(dev_handle, enable);
  handle->set_auto_detach(enable != 0);
  return LIBUSB_SUCCESS;
}

USBNET_EXPORT int libusb_alloc_streams(libusb_device_handle* dev_handle, uint32_t num_streams,
                                       unsigned char* endpoints, int num_endpoints) {
  if (RemoteHandle::from(dev_handle)) return LIBUSB_ERROR_NOT_SUPPORTED;
  return real().libusb_alloc_streams(dev_handle, num_streams, endpoints, num_endpoints);
}

USBNET_EXPORT int libusb_free_streams(libusb_device_handle* dev_handle, unsigned char* endpoints,
                                      int num_endpoints) {
  if (RemoteHandle::from(dev_handle)) return LIBUSB_ERROR_NOT_SUPPORTED;
  return real().libusb_free_streams(dev_handle, endpoints, num_endpoints);
}

USBNET_EXPORT unsigned char* libusb_dev_mem_alloc(libusb_device_handle* dev_handle, size_t length) {
  // Zero-copy device memory exists only next to the device.
  if (RemoteHandle::from(dev_handle)) return nullptr;
  return real().libusb_dev_mem_alloc(dev_handle, length);
}

USBNET_EXPORT int libusb_dev_mem_free(libusb_device_handle* dev_handle, unsigned char* buffer,
                                      size_t length) {
  if (RemoteHandle::from(dev_handle)) return LIBUSB_ERROR_NOT_SUPPORTED;
  return real().libusb_dev_mem_free(dev_handle, buffer, length);
}

USBNET_EXPORT int libusb_get_string_descriptor_ascii(libusb_device_handle* dev_handle,
                                                     uint8_t desc_index, unsigned char* data,
                                                     int length) {
  RemoteHandle* handle = RemoteHandle::from(dev_handle);
  if (!handle)
    return real().libusb_get_string_descriptor_ascii(dev_handle, desc_index, data, length);
  return guarded(int{LIBUSB_ERROR_NO_MEM}, [&] {
    // As libusb: index 0 is not a string; the first language of string 0 is used; characters
    // outside ASCII become '?'.
    if (desc_index == 0) return int{LIBUSB_ERROR_INVALID_PARAM};
    unsigned char buffer[255];
    auto get_string = [&](std::uint8_t index, std::uint16_t langid, std::uint16_t size) {
      return remote_control_transfer(*handle, LIBUSB_ENDPOINT_IN, LIBUSB_REQUEST_GET_DESCRIPTOR,
                                     static_cast<std::uint16_t>((LIBUSB_DT_STRING << 8) | index),
                                     langid, buffer, size, 1000);
    };
    int r = get_string(0, 0, 4);
    if (r < 0) return r;
    if (r != 4 || buffer[0] < 4 || buffer[1] != LIBUSB_DT_STRING) return int{LIBUSB_ERROR_IO};
    const std::uint16_t langid = static_cast<std::uint16_t>(buffer[2] | (buffer[3] << 8));
    r = get_string(desc_index, langid, sizeof buffer);
    if (r < 0) return r;
    if (r < 2 || buffer[0] > r || buffer[1] != LIBUSB_DT_STRING) return int{LIBUSB_ERROR_IO};
    int out = 0;
    for (int at = 2; at < buffer[0] && out < length - 1; at += 2) {
      const unsigned unit = buffer[at] | (at + 1 < r ? buffer[at + 1] << 8 : 0);
      data[out++] = unit < 0x80 ? static_cast<unsigned char>(unit) : '?';
    }
    if (length > 0) data[out] = 0;
    return out;
  });
}
