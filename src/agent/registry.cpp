#include "agent/registry.h"

#include <algorithm>

#include "agent/session.h"
#include "common/hub_selection.h"
#include "common/log.h"
#include "common/topology.h"

namespace usbnet::agent {

DeviceRegistry::DeviceRegistry(DeviceFilter export_filter)
    : export_filter_(std::move(export_filter)) {}

void DeviceRegistry::device_arrived(const DevicePtr& device) {
  Known& known = known_.emplace_back(Known{device, device->info()});
  const wire::DeviceInfo& info = known.info;
  const auto arrival = hub_selection::on_arrival(
      export_filter_.matches(topology::vendor_id(info), topology::product_id(info)),
      topology::is_hub(info));
  known.wanted = arrival == hub_selection::Arrival::Take;
  if (!known.wanted) {
    log::debug("not exporting {:04x}:{:04x} (bus {} address {}){}", topology::vendor_id(info),
               topology::product_id(info), info.bus_number, info.device_address,
               arrival == hub_selection::Arrival::SetAside ? " unless a device below it is" : "");
  }
  // This one, and any that waited for it (or for a hub below it).
  for (std::size_t i = 0; i < known_.size(); ++i) {
    if (known_[i].wanted && known_[i].id == 0) export_with_hubs(known_[i]);
  }
}

bool DeviceRegistry::export_with_hubs(Known& known) {
  if (known.id != 0) return true;
  const auto chain = hub_selection::chain_to_take(
      known, [](const Known& k) { return topology::is_root(k.info); },
      [this](const Known& k) -> Known* {
        auto parent = std::find_if(known_.begin(), known_.end(), [&](const Known& p) {
          return topology::is_parent_of(p.info, k.info);
        });
        return parent == known_.end() ? nullptr : &*parent;
      },
      [](const Known& k) { return k.id != 0; });
  if (!chain.complete) {
    log::debug("bus {} address {} waits for its hub", known.info.bus_number,
               known.info.device_address);
    return false;
  }
  std::uint32_t parent_id = chain.above ? chain.above->id : 0;
  for (Known* k : chain.to_take) {
    export_one(*k, parent_id);
    parent_id = k->id;
  }
  return true;
}

void DeviceRegistry::export_one(Known& known, std::uint32_t parent_id) {
  known.id = next_id_++;
  known.info.device_id = known.id;
  known.info.parent_id = parent_id;
  const wire::DeviceInfo& info = known.info;
  log::info("exporting {} {}: {:04x}:{:04x} (bus {} address {}, parent {})",
            topology::is_hub(info) ? "hub" : "device", known.id, topology::vendor_id(info),
            topology::product_id(info), info.bus_number, info.device_address, parent_id);
  devices_.emplace(known.id, ExportedDevice{known.id, known.device, info});
  for_each_session([&](Session& s) { s.device_arrived(info); });
}

void DeviceRegistry::device_left(const DevicePtr& device) {
  auto it = std::find_if(known_.begin(), known_.end(),
                         [&](const Known& k) { return k.device == device; });
  if (it == known_.end()) return;
  const std::uint32_t id = it->id;
  known_.erase(it);
  if (id == 0) return;
  // Devices below a hub that leaves first keep its (now dangling) parent_id: clients resolve
  // it to "no parent".
  log::info("device {} left", id);
  sharing_.forget_device(id);
  devices_.erase(id);
  for_each_session([id](Session& s) { s.device_left(id); });
}

std::vector<wire::DeviceInfo> DeviceRegistry::list() const {
  std::vector<wire::DeviceInfo> infos;
  for (const auto& [id, d] : devices_) infos.push_back(d.info);
  return infos;
}

const ExportedDevice* DeviceRegistry::find(std::uint32_t device_id) const {
  auto it = devices_.find(device_id);
  return it == devices_.end() ? nullptr : &it->second;
}

void DeviceRegistry::add_session(const std::weak_ptr<Session>& session) {
  std::erase_if(sessions_, [](const auto& s) { return s.expired(); });
  sessions_.push_back(session);
}

template <typename Fn>
void DeviceRegistry::for_each_session(Fn&& fn) {
  std::erase_if(sessions_, [](const auto& s) { return s.expired(); });
  // A copy: a session may close (and leave the list) while it is being told.
  const auto sessions = sessions_;
  for (const auto& weak : sessions) {
    if (auto s = weak.lock()) fn(*s);
  }
}

}  // namespace usbnet::agent
