// Remote devices and handles as the program sees them: opaque libusb_device and
// libusb_device_handle pointers that are really these objects.
#pragma once

#include <libusb.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <set>

#include "usbnet/messages.h"

namespace usbnet::interpose {

class AgentLink;
class Context;

// A device one of the agents exports. Reference-counted like a libusb_device: the context holds
// one reference while the device is attached, each device list entry and each handle another.
class RemoteDevice {
 public:
  RemoteDevice(Context& context, std::shared_ptr<AgentLink> link, wire::DeviceInfo info,
               std::uint8_t bus_number);

  static RemoteDevice* from(libusb_device* device);  // nullptr if not ours
  libusb_device* as_libusb() { return reinterpret_cast<libusb_device*>(this); }

  RemoteDevice* ref();
  void unref();

  Context& context() const { return context_; }
  AgentLink& link() const { return *link_; }
  const std::shared_ptr<AgentLink>& link_ptr() const { return link_; }
  const wire::DeviceInfo& info() const { return info_; }
  std::uint32_t device_id() const { return info_.device_id; }
  std::uint8_t bus_number() const { return bus_number_; }
  std::uint16_t vendor_id() const;
  std::uint16_t product_id() const;

  // The device left (unplugged, or its agent was lost): it can no longer be opened or used.
  bool gone() const { return gone_.load(); }
  void mark_gone() { gone_ = true; }

  std::uint8_t active_config() const { return active_config_.load(); }
  void set_active_config(std::uint8_t value) { active_config_ = value; }

 private:
  ~RemoteDevice();

  Context& context_;
  std::shared_ptr<AgentLink> link_;
  wire::DeviceInfo info_;
  std::uint8_t bus_number_;
  std::atomic<int> refs_{1};
  std::atomic<bool> gone_{false};
  std::atomic<std::uint8_t> active_config_;
};

// An open remote device.
class RemoteHandle {
 public:
  RemoteHandle(RemoteDevice& device, std::uint32_t handle_id);
  ~RemoteHandle();

  static RemoteHandle* from(libusb_device_handle* handle);  // nullptr if not ours
  libusb_device_handle* as_libusb() { return reinterpret_cast<libusb_device_handle*>(this); }

  RemoteDevice& device() const { return device_; }
  std::uint32_t id() const { return id_; }

  bool auto_detach() const { return auto_detach_.load(); }
  void set_auto_detach(bool on) { auto_detach_ = on; }
  bool claimed(int interface_number) const;
  void set_claimed(int interface_number, bool claimed);

 private:
  RemoteDevice& device_;
  std::uint32_t id_;
  std::atomic<bool> auto_detach_{false};
  mutable std::mutex mutex_;
  std::set<int> claimed_;
};

}  // namespace usbnet::interpose
