// The shim's remote backend: remote devices and handles as the program sees them (opaque
// libusb_device and libusb_device_handle pointers that are really these objects), with the
// operations libusb's core asks of a backend (its usbi_os_backend): open and close,
// configuration, interfaces, halts, reset, kernel drivers, transfers, descriptors. The exports
// check their arguments as libusb's core does and reach these through dispatch() (api.h); the
// real library serves every other device.
#pragma once

#include <libusb.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <set>

#include "usbnet/expected.h"
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

  static RemoteDevice* from(const libusb_device* device);  // nullptr if not ours
  libusb_device* as_libusb() { return reinterpret_cast<libusb_device*>(this); }

  Context& context() const { return context_; }
  AgentLink& link() const { return *link_; }
  const wire::DeviceInfo& info() const { return info_; }
  std::uint32_t device_id() const { return info_.device_id; }
  std::uint16_t vendor_id() const;
  std::uint16_t product_id() const;

  // The device left (unplugged, or its agent was lost): it can no longer be opened or used.
  bool gone() const { return gone_.load(); }
  void mark_gone() { gone_ = true; }
  void set_active_config(std::uint8_t value) { active_config_ = value; }

  RemoteDevice* ref();
  void unref();

  // ---- the backend's device operations (remote_device.cpp) ----
  libusb_device* ref_device() { return ref()->as_libusb(); }
  void unref_device() { unref(); }
  int open(libusb_device_handle** handle);
  std::uint8_t get_bus_number() const { return bus_number_; }
  std::uint8_t get_device_address() const { return info_.device_address; }
  int get_device_speed() const { return info_.speed; }
  std::uint8_t get_port_number() const;
  int get_port_numbers(std::uint8_t* port_numbers, int length) const;
  // The attached hub it hangs from (no reference added), or nullptr.
  libusb_device* get_parent() const;
  int get_device_descriptor(libusb_device_descriptor* descriptor) const;
  int get_config_descriptor(std::uint8_t index, libusb_config_descriptor** config) const;
  int get_config_descriptor_by_value(std::uint8_t value, libusb_config_descriptor** config) const;
  int get_active_config_descriptor(libusb_config_descriptor** config) const;
  int get_max_packet_size(unsigned char endpoint);
  int get_max_iso_packet_size(unsigned char endpoint);

 private:
  struct ConfigFreer {
    void operator()(libusb_config_descriptor* config) const;
  };
  using UniqueConfig = std::unique_ptr<libusb_config_descriptor, ConfigFreer>;

  ~RemoteDevice();
  Expected<const libusb_endpoint_descriptor*, int> active_endpoint(unsigned char endpoint,
                                                                   UniqueConfig& config) const;

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

  static RemoteHandle* from(const libusb_device_handle* handle);  // nullptr if not ours
  libusb_device_handle* as_libusb() { return reinterpret_cast<libusb_device_handle*>(this); }

  RemoteDevice& device() const { return device_; }
  std::uint32_t id() const { return id_; }

  // ---- the backend's handle operations (remote_handle.cpp, transfers in remote_transfer.cpp
  // and sync_transfer.cpp) ----
  void close();  // and frees the handle
  libusb_device* get_device() { return device_.as_libusb(); }
  int get_configuration(int* config);
  int set_configuration(int configuration);
  int claim_interface(int interface_number);
  int release_interface(int interface_number);
  int set_interface_alt_setting(int interface_number, int alternate_setting);
  int clear_halt(unsigned char endpoint);
  int reset_device();
  int kernel_driver_active(int interface_number);
  int detach_kernel_driver(int interface_number);
  int attach_kernel_driver(int interface_number);
  int set_auto_detach_kernel_driver(int enable);
  // Streams and device memory exist only next to the device.
  int alloc_streams(std::uint32_t, unsigned char*, int) { return LIBUSB_ERROR_NOT_SUPPORTED; }
  int free_streams(unsigned char*, int) { return LIBUSB_ERROR_NOT_SUPPORTED; }
  unsigned char* dev_mem_alloc(std::size_t) { return nullptr; }
  int dev_mem_free(unsigned char*, std::size_t) { return LIBUSB_ERROR_NOT_SUPPORTED; }
  int get_string_descriptor_ascii(std::uint8_t index, unsigned char* data, int length);
  int get_bos_descriptor(libusb_bos_descriptor** bos);

  int submit_transfer(libusb_transfer* transfer);
  int cancel_transfer(libusb_transfer* transfer);
  void free_transfer(libusb_transfer* transfer);
  int control_transfer(std::uint8_t request_type, std::uint8_t request, std::uint16_t value,
                       std::uint16_t index, unsigned char* data, std::uint16_t length,
                       unsigned int timeout);
  int bulk_transfer(unsigned char endpoint, unsigned char* data, int length, int* transferred,
                    unsigned int timeout);
  int interrupt_transfer(unsigned char endpoint, unsigned char* data, int length, int* transferred,
                         unsigned int timeout);

 private:
  ~RemoteHandle();
  // Sends a device request about this handle: the REPLY value or a libusb error code.
  Expected<std::uint32_t, std::int32_t> request(wire::Message request);

  RemoteDevice& device_;
  std::uint32_t id_;
  std::atomic<bool> auto_detach_{false};
  std::mutex mutex_;
  std::set<int> claimed_;
};

}  // namespace usbnet::interpose
