#include "interpose/remote_device.h"

#include "common/topology.h"
#include "interpose/agent_link.h"
#include "interpose/objects.h"

namespace usbnet::interpose {

RemoteDevice::RemoteDevice(Context& context, std::shared_ptr<AgentLink> link, wire::DeviceInfo info,
                           std::uint8_t bus_number)
    : context_(context),
      link_(std::move(link)),
      info_(std::move(info)),
      bus_number_(bus_number),
      active_config_(info_.active_config) {
  remote_devices().add(this);
}

RemoteDevice::~RemoteDevice() { remote_devices().remove(this); }

RemoteDevice* RemoteDevice::from(libusb_device* device) {
  return remote_devices().contains(device) ? reinterpret_cast<RemoteDevice*>(device) : nullptr;
}

RemoteDevice* RemoteDevice::ref() {
  refs_.fetch_add(1, std::memory_order_relaxed);
  return this;
}

void RemoteDevice::unref() {
  // libusb_device is reference-counted at the C ABI: the last unref frees it.
  if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
}

std::uint16_t RemoteDevice::vendor_id() const { return topology::vendor_id(info_); }

std::uint16_t RemoteDevice::product_id() const { return topology::product_id(info_); }

RemoteHandle::RemoteHandle(RemoteDevice& device, std::uint32_t handle_id)
    : device_(*device.ref()), id_(handle_id) {
  remote_handles().add(this);
}

RemoteHandle::~RemoteHandle() {
  remote_handles().remove(this);
  device_.unref();
}

RemoteHandle* RemoteHandle::from(libusb_device_handle* handle) {
  return remote_handles().contains(handle) ? reinterpret_cast<RemoteHandle*>(handle) : nullptr;
}

bool RemoteHandle::claimed(int interface_number) const {
  std::lock_guard lock(mutex_);
  return claimed_.contains(interface_number);
}

void RemoteHandle::set_claimed(int interface_number, bool claimed) {
  std::lock_guard lock(mutex_);
  if (claimed) {
    claimed_.insert(interface_number);
  } else {
    claimed_.erase(interface_number);
  }
}

}  // namespace usbnet::interpose
