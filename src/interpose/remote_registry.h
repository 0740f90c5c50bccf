// The remote devices a context offers, as pure logic: which of the agents' device records
// USBNET_DEVICES selects (with the hubs above them, the rule of common/hub_selection.h, which
// the agent follows too), the bus number each gets (201 and up, one per agent's bus), which
// attached device hangs from which, and what leaves when a device, or a whole agent, goes.
// Agents are numbered by the caller; `Device` is what the caller makes of a record it takes
// (the shim: a RemoteDevice*). No locks: the caller serializes access.
#pragma once

#include <algorithm>
#include <cstdint>
#include <map>
#include <optional>
#include <utility>
#include <vector>

#include "common/device_filter.h"
#include "common/hub_selection.h"
#include "common/topology.h"
#include "usbnet/messages.h"

namespace usbnet::interpose {

template <typename Device>
class RemoteRegistry {
 public:
  explicit RemoteRegistry(DeviceFilter selected) : selected_(std::move(selected)) {}

  // A record from agent `agent` (in its device list, or an arrival). Returns the devices taken
  // now, from the top down: hubs that waited aside for it, then it (nothing when it is attached
  // already, waits aside, or is not selected). `make(info, bus_number)` makes each.
  template <typename Make>
  std::vector<Device> attach(int agent, const wire::DeviceInfo& info, Make make) {
    const Key key{agent, info.device_id};
    auto [it, inserted] = known_.try_emplace(key, Entry{info, std::nullopt});
    if (!inserted && it->second.device) return {};
    const bool named = selected_.matches(topology::vendor_id(info), topology::product_id(info));
    if (hub_selection::on_arrival(named, topology::is_hub(info)) != hub_selection::Arrival::Take) {
      if (!topology::is_hub(info)) known_.erase(it);
      return {};
    }
    // A hub that is not known (it left, or a broken agent names one it never listed) leaves the
    // device without a parent; it is attached all the same.
    const auto chain = hub_selection::chain_to_take(
        it->second, [](const Entry& e) { return e.info.parent_id == 0; },
        [&](const Entry& e) -> Entry* {
          auto parent = known_.find(Key{agent, e.info.parent_id});
          return parent == known_.end() ? nullptr : &parent->second;
        },
        [](const Entry& e) { return e.device.has_value(); });
    std::vector<Device> taken;
    for (Entry* e : chain.to_take) {
      e->device = make(e->info, bus_for(agent, e->info.bus_number));
      taken.push_back(*e->device);
    }
    return taken;
  }

  // The device left: returns it if it was attached (it is no longer). A hub waiting aside is
  // forgotten.
  std::optional<Device> detach(int agent, std::uint32_t device_id) {
    auto it = known_.find(Key{agent, device_id});
    if (it == known_.end()) return std::nullopt;
    std::optional<Device> device = std::move(it->second.device);
    known_.erase(it);
    return device;
  }

  // The agent was lost: its attached devices, highest id first (devices leave before the hubs
  // above them: the agent numbers a hub before its children), as the kernel removes a tree.
  std::vector<Device> agent_lost(int agent) {
    std::vector<Device> gone;
    for (auto it = known_.rbegin(); it != known_.rend(); ++it) {
      if (it->first.first == agent && it->second.device) gone.push_back(*it->second.device);
    }
    std::erase_if(known_, [agent](const auto& entry) { return entry.first.first == agent; });
    return gone;
  }

  // The attached hub the device `info` of `agent` hangs from; nullopt for a root hub, or when its
  // hub is not attached (it left, or waits aside).
  std::optional<Device> parent_of(int agent, const wire::DeviceInfo& info) const {
    if (info.parent_id == 0) return std::nullopt;
    auto it = known_.find(Key{agent, info.parent_id});
    if (it == known_.end()) return std::nullopt;
    return it->second.device;
  }

  // Every attached device, by agent and then id.
  std::vector<Device> attached() const {
    std::vector<Device> all;
    for (const auto& [key, entry] : known_) {
      if (entry.device) all.push_back(*entry.device);
    }
    return all;
  }

  // Forgets everything; returns what was attached.
  std::vector<Device> clear() {
    std::vector<Device> all = attached();
    known_.clear();
    return all;
  }

  // The bus number the program sees for an agent's bus: 201 for the first one met, and so on
  // (255 at most: more buses share it).
  std::uint8_t bus_for(int agent, std::uint8_t agent_bus) {
    auto [it, inserted] = buses_.try_emplace({agent, agent_bus}, 0);
    if (inserted) {
      it->second = static_cast<std::uint8_t>(
          std::min<std::size_t>(kFirstRemoteBus + buses_.size() - 1, 255));
    }
    return it->second;
  }

 private:
  static constexpr std::uint8_t kFirstRemoteBus = 201;
  using Key = std::pair<int, std::uint32_t>;  // agent, device id
  struct Entry {
    wire::DeviceInfo info;
    std::optional<Device> device;  // attached; nullopt: a hub waiting aside
  };

  DeviceFilter selected_;
  std::map<Key, Entry> known_;  // attached devices, and unselected hubs waiting aside
  std::map<std::pair<int, std::uint8_t>, std::uint8_t> buses_;
};

}  // namespace usbnet::interpose
