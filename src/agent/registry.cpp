#include "agent/registry.h"

#include "agent/session.h"
#include "common/log.h"

namespace usbnet::agent {

namespace {
std::uint16_t descriptor_u16(const wire::DeviceInfo& info, std::size_t offset) {
  return static_cast<std::uint16_t>(info.device_descriptor[offset] |
                                    (info.device_descriptor[offset + 1] << 8));
}
}  // namespace

DeviceRegistry::DeviceRegistry(DeviceFilter export_filter)
    : export_filter_(std::move(export_filter)) {}

void DeviceRegistry::device_arrived(const DevicePtr& device) {
  wire::DeviceInfo info = device->info();
  const std::uint16_t vendor = descriptor_u16(info, 8);
  const std::uint16_t product = descriptor_u16(info, 10);
  if (!export_filter_.matches(vendor, product)) {
    log::debug("not exporting {:04x}:{:04x} (bus {} address {})", vendor, product, info.bus_number,
               info.device_address);
    return;
  }
  const std::uint32_t id = next_id_++;
  info.device_id = id;
  log::info("exporting device {}: {:04x}:{:04x} (bus {} address {})", id, vendor, product,
            info.bus_number, info.device_address);
  devices_.emplace(id, ExportedDevice{id, device, info});
  for_each_session([&](Session& s) { s.device_arrived(info); });
}

void DeviceRegistry::device_left(const DevicePtr& device) {
  for (auto it = devices_.begin(); it != devices_.end(); ++it) {
    if (it->second.device != device) continue;
    const std::uint32_t id = it->first;
    log::info("device {} left", id);
    std::erase_if(claims_, [id](const auto& claim) { return claim.first.first == id; });
    devices_.erase(it);
    for_each_session([id](Session& s) { s.device_left(id); });
    return;
  }
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

bool DeviceRegistry::claim(std::uint32_t device_id, std::uint8_t interface_number, Owner owner) {
  auto [it, inserted] = claims_.try_emplace({device_id, interface_number}, owner);
  if (inserted) return true;
  return it->second.session == owner.session && it->second.handle == owner.handle;
}

void DeviceRegistry::release(std::uint32_t device_id, std::uint8_t interface_number, Owner owner) {
  auto it = claims_.find({device_id, interface_number});
  if (it != claims_.end() && it->second.session == owner.session &&
      it->second.handle == owner.handle) {
    claims_.erase(it);
  }
}

bool DeviceRegistry::claimed_by_other(std::uint32_t device_id, const Session* asking) const {
  for (auto it = claims_.lower_bound({device_id, 0});
       it != claims_.end() && it->first.first == device_id; ++it) {
    if (it->second.session != asking) return true;
  }
  return false;
}

}  // namespace usbnet::agent
