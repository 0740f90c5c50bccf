// The remote backend's handle operations: device requests to the agent, with libusb's
// bookkeeping of claimed interfaces and automatic kernel-driver detaching.
#include <algorithm>
#include <vector>

#include "common/log.h"
#include "interpose/agent_link.h"
#include "interpose/descriptors/descriptors.h"
#include "interpose/objects.h"
#include "interpose/remote_device.h"

namespace usbnet::interpose {

namespace {

int result_of(const Expected<std::uint32_t, std::int32_t>& r) {
  return r ? LIBUSB_SUCCESS : r.error();
}

}  // namespace

RemoteHandle::RemoteHandle(RemoteDevice& device, std::uint32_t handle_id)
    : device_(*device.ref()), id_(handle_id) {
  remote_handles().add(this);
}

RemoteHandle::~RemoteHandle() {
  remote_handles().remove(this);
  device_.unref();
}

RemoteHandle* RemoteHandle::from(const libusb_device_handle* handle) {
  return remote_handles().contains(handle)
             ? reinterpret_cast<RemoteHandle*>(const_cast<libusb_device_handle*>(handle))
             : nullptr;
}

Expected<std::uint32_t, std::int32_t> RemoteHandle::request(wire::Message request) {
  if (device_.gone()) return Unexpected{std::int32_t{LIBUSB_ERROR_NO_DEVICE}};
  std::visit(
      [&](auto& m) {
        if constexpr (requires { m.handle; }) m.handle = id_;
      },
      request);
  return device_.link().client().request(std::move(request));
}

void RemoteHandle::close() {
  if (!device_.gone()) {
    if (auto r = request(wire::Close{}); !r) {
      log::debug("closing a remote handle: {}", wire::error_code_name(r.error()));
    }
  }
  delete this;
}

int RemoteHandle::get_configuration(int* config) {
  auto r = request(wire::GetConfiguration{});
  if (r) {
    *config = static_cast<int>(*r);
    device_.set_active_config(static_cast<std::uint8_t>(*r));
  }
  return result_of(r);
}

int RemoteHandle::set_configuration(int configuration) {
  auto r = request(wire::SetConfiguration{0, 0, configuration});
  if (r)
    device_.set_active_config(static_cast<std::uint8_t>(configuration < 0 ? 0 : configuration));
  return result_of(r);
}

int RemoteHandle::claim_interface(int interface_number) {
  std::lock_guard lock(mutex_);
  if (claimed_.contains(interface_number)) return LIBUSB_SUCCESS;
  const auto iface = static_cast<std::uint8_t>(interface_number);
  if (auto_detach_) {
    // As libusb on Linux: a driver that is not there is no failure.
    auto r = request(wire::KernelDriver{0, 0, wire::KernelDriverOp::Detach, iface});
    if (!r && r.error() != LIBUSB_ERROR_NOT_FOUND) return r.error();
  }
  auto r = request(wire::ClaimInterface{0, 0, iface});
  if (r) claimed_.insert(interface_number);
  return result_of(r);
}

int RemoteHandle::release_interface(int interface_number) {
  std::lock_guard lock(mutex_);
  if (!claimed_.contains(interface_number)) return LIBUSB_ERROR_NOT_FOUND;
  const auto iface = static_cast<std::uint8_t>(interface_number);
  auto r = request(wire::ReleaseInterface{0, 0, iface});
  if (r || r.error() == LIBUSB_ERROR_NO_DEVICE) claimed_.erase(interface_number);
  if (r && auto_detach_) request(wire::KernelDriver{0, 0, wire::KernelDriverOp::Attach, iface});
  return result_of(r);
}

int RemoteHandle::set_interface_alt_setting(int interface_number, int alternate_setting) {
  {
    std::lock_guard lock(mutex_);
    if (!claimed_.contains(interface_number)) return LIBUSB_ERROR_NOT_FOUND;
  }
  return result_of(request(wire::SetAltSetting{0, 0, static_cast<std::uint8_t>(interface_number),
                                               static_cast<std::uint8_t>(alternate_setting)}));
}

int RemoteHandle::clear_halt(unsigned char endpoint) {
  return result_of(request(wire::ClearHalt{0, 0, endpoint}));
}

int RemoteHandle::reset_device() { return result_of(request(wire::ResetDevice{})); }

int RemoteHandle::kernel_driver_active(int interface_number) {
  auto r = request(wire::KernelDriver{0, 0, wire::KernelDriverOp::Query,
                                      static_cast<std::uint8_t>(interface_number)});
  return r ? static_cast<int>(*r) : static_cast<int>(r.error());
}

int RemoteHandle::detach_kernel_driver(int interface_number) {
  return result_of(request(wire::KernelDriver{0, 0, wire::KernelDriverOp::Detach,
                                              static_cast<std::uint8_t>(interface_number)}));
}

int RemoteHandle::attach_kernel_driver(int interface_number) {
  return result_of(request(wire::KernelDriver{0, 0, wire::KernelDriverOp::Attach,
                                              static_cast<std::uint8_t>(interface_number)}));
}

int RemoteHandle::set_auto_detach_kernel_driver(int enable) {
  auto_detach_ = enable != 0;
  return LIBUSB_SUCCESS;
}

int RemoteHandle::get_string_descriptor_ascii(std::uint8_t index, unsigned char* data, int length) {
  // As libusb: the first language of string 0 is used; characters outside ASCII become '?'.
  unsigned char buffer[255];
  auto get_string = [&](std::uint8_t i, std::uint16_t langid, std::uint16_t size) {
    return control_transfer(LIBUSB_ENDPOINT_IN, LIBUSB_REQUEST_GET_DESCRIPTOR,
                            static_cast<std::uint16_t>((LIBUSB_DT_STRING << 8) | i), langid, buffer,
                            size, 1000);
  };
  int r = get_string(0, 0, 4);
  if (r < 0) return r;
  if (r != 4 || buffer[0] < 4 || buffer[1] != LIBUSB_DT_STRING) return LIBUSB_ERROR_IO;
  const std::uint16_t langid = static_cast<std::uint16_t>(buffer[2] | (buffer[3] << 8));
  r = get_string(index, langid, sizeof buffer);
  if (r < 0) return r;
  if (r < 2 || buffer[0] > r || buffer[1] != LIBUSB_DT_STRING) return LIBUSB_ERROR_IO;
  int out = 0;
  for (int at = 2; at < buffer[0] && out < length - 1; at += 2) {
    const unsigned unit = buffer[at] | (at + 1 < r ? buffer[at + 1] << 8 : 0);
    data[out++] = unit < 0x80 ? static_cast<unsigned char>(unit) : '?';
  }
  if (length > 0) data[out] = 0;
  return out;
}

int RemoteHandle::get_bos_descriptor(libusb_bos_descriptor** bos) {
  // As libusb: read the header, then the whole descriptor, from the device itself.
  unsigned char header[LIBUSB_DT_BOS_SIZE];
  int r = control_transfer(LIBUSB_ENDPOINT_IN, LIBUSB_REQUEST_GET_DESCRIPTOR, LIBUSB_DT_BOS << 8, 0,
                           header, sizeof header, 1000);
  if (r < 0) return r;
  if (r < LIBUSB_DT_BOS_SIZE) return LIBUSB_ERROR_IO;
  const std::uint16_t total = static_cast<std::uint16_t>(header[2] | (header[3] << 8));
  std::vector<unsigned char> raw(std::max<std::size_t>(total, LIBUSB_DT_BOS_SIZE));
  r = control_transfer(LIBUSB_ENDPOINT_IN, LIBUSB_REQUEST_GET_DESCRIPTOR, LIBUSB_DT_BOS << 8, 0,
                       raw.data(), static_cast<std::uint16_t>(raw.size()), 1000);
  if (r < 0) return r;
  raw.resize(static_cast<std::size_t>(r));
  auto parsed = parse_bos_descriptor(raw);
  if (!parsed) return parsed.error();
  allocations().add(*parsed);
  *bos = *parsed;
  return LIBUSB_SUCCESS;
}

}  // namespace usbnet::interpose
