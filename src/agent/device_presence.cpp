#include "agent/device_presence.h"

#include <algorithm>

namespace usbnet::agent {

namespace {
// A departure must outlive every observation made before it that may still be on its way (an
// enumeration takes milliseconds, a queued hotplug event less): a minute is plenty.
constexpr auto kRememberDepartures = std::chrono::minutes(1);
}  // namespace

std::string UsbIdentity::to_string() const {
  std::string path;
  for (std::uint8_t p : ports) path += (path.empty() ? "" : ".") + std::to_string(p);
  return "bus " + std::to_string(bus) + " port " + (path.empty() ? "-" : path) + " address " +
         std::to_string(address);
}

bool DevicePresence::arrival_seen(const UsbIdentity& id, Clock::time_point seen) {
  if (known_.contains(id) || reading_.contains(id)) return false;
  if (auto gone = departed_.find(id); gone != departed_.end() && gone->second >= seen) {
    return false;  // a late sighting of a device that has left since
  }
  reading_.emplace(id, seen);
  return true;
}

bool DevicePresence::arrival_read(const UsbIdentity& id) {
  auto it = reading_.find(id);
  if (it == reading_.end()) return false;  // it left while being read
  known_.emplace(id, it->second);
  reading_.erase(it);
  return true;
}

bool DevicePresence::departure_seen(const UsbIdentity& id, Clock::time_point seen) {
  note_departure(id, seen);
  if (reading_.erase(id) > 0) return false;  // never reported: nothing to take back
  return known_.erase(id) > 0;
}

DevicePresence::Changes DevicePresence::enumerated(const std::set<UsbIdentity>& present,
                                                   Clock::time_point started) {
  forget_old_departures(started);
  Changes changes;
  // Only what was seen before the enumeration started can be missing from it.
  for (auto it = known_.begin(); it != known_.end();) {
    if (it->second < started && !present.contains(it->first)) {
      note_departure(it->first, started);
      changes.left.push_back(it->first);
      it = known_.erase(it);
    } else {
      ++it;
    }
  }
  for (auto it = reading_.begin(); it != reading_.end();) {
    if (it->second < started && !present.contains(it->first)) {
      note_departure(it->first, started);
      it = reading_.erase(it);
    } else {
      ++it;
    }
  }
  for (const UsbIdentity& id : present) {
    if (arrival_seen(id, started)) changes.arrived.push_back(id);
  }
  return changes;
}

void DevicePresence::note_departure(const UsbIdentity& id, Clock::time_point seen) {
  auto [gone, inserted] = departed_.try_emplace(id, seen);
  if (!inserted) gone->second = std::max(gone->second, seen);
}

void DevicePresence::forget_old_departures(Clock::time_point now) {
  std::erase_if(departed_, [now](const auto& d) { return d.second + kRememberDepartures < now; });
}

}  // namespace usbnet::agent
