// The agent's view of its devices: which are exported (the --export filter), the device ids
// clients know them by, which hub each hangs from (parent_id), how clients share them (claims,
// device_sharing.h), and who must hear about arrivals and departures. Lives on the io thread.
//
// Hubs are topology (the rule of common/hub_selection.h, which the shim follows too): a device
// is exported after the hubs above it, which are exported with it whether or not the filter
// names them (a hub the filter names is exported on its own). So ids grow from the root down,
// and the list (in id order) has every hub before its children. A device whose hub has not
// arrived yet waits for it.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <vector>

#include "agent/device.h"
#include "agent/device_sharing.h"
#include "common/device_filter.h"

namespace usbnet::agent {

class Session;

struct ExportedDevice {
  std::uint32_t id;
  DevicePtr device;
  wire::DeviceInfo info;  // with device_id set
};

class DeviceRegistry : public DeviceListener {
 public:
  explicit DeviceRegistry(DeviceFilter export_filter);

  // DeviceListener (called by backends on the io thread).
  void device_arrived(const DevicePtr& device) override;
  void device_left(const DevicePtr& device) override;

  std::vector<wire::DeviceInfo> list() const;
  const ExportedDevice* find(std::uint32_t device_id) const;
  // The exported devices by id (so every hub before the devices below it).
  const std::map<std::uint32_t, ExportedDevice>& devices() const { return devices_; }

  // Sessions hear about every arrival and departure once they are registered.
  void add_session(const std::weak_ptr<Session>& session);

  // Interface ownership across clients, and what each client may do on a shared device.
  DeviceSharing& sharing() { return sharing_; }

 private:
  template <typename Fn>
  void for_each_session(Fn&& fn);

  // Every device the backends report, exported or not.
  struct Known {
    DevicePtr device;
    wire::DeviceInfo info;
    bool wanted = false;   // the filter names it (hubs above it are exported with it)
    std::uint32_t id = 0;  // 0: not exported (yet)
  };
  // Exports `known` after its ancestors; false if one of them has not arrived.
  bool export_with_hubs(Known& known);
  void export_one(Known& known, std::uint32_t parent_id);

  DeviceFilter export_filter_;
  std::uint32_t next_id_ = 1;
  std::vector<Known> known_;  // in order of arrival
  std::map<std::uint32_t, ExportedDevice> devices_;
  std::vector<std::weak_ptr<Session>> sessions_;
  DeviceSharing sharing_;
};

}  // namespace usbnet::agent
