// Which real USB devices the agent knows, kept consistent while two sources report them:
// libusb's hotplug callback (immediate, but silent where libusb hears nothing, e.g. Debian's
// udev-based libusb on a machine or container without udevd) and periodic enumerations (late by
// up to one interval, but always right). Every arrival and every departure comes out once, from
// whichever source sees it first.
//
// A device is known by where it is plugged and the address the kernel gave it: a device
// plugged in again gets a new address, so a departure and the next arrival are never confused.
// Observations carry the time they were made: an enumeration only tells about devices known
// before it started, and a sighting older than a departure does not bring the device back.
//
// Pure bookkeeping (no libusb, no threads): the backend calls it on its io thread.
#pragma once

#include <chrono>
#include <compare>
#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

namespace usbnet::agent {

struct UsbIdentity {
  std::uint8_t bus = 0;
  std::vector<std::uint8_t> ports;  // the port path from the root hub
  std::uint8_t address = 0;

  auto operator<=>(const UsbIdentity&) const = default;
  std::string to_string() const;  // "bus 1 port 2.3 address 7"
};

class DevicePresence {
 public:
  using Clock = std::chrono::steady_clock;

  // A source saw the device present at `seen`. True if the agent should read it and then call
  // arrival_read: it is neither known nor being read, and it has not been seen leaving since.
  bool arrival_seen(const UsbIdentity& id, Clock::time_point seen);
  // Its descriptors are read. True if it is to be reported as arrived: it did not leave
  // meanwhile. From now on it is known.
  bool arrival_read(const UsbIdentity& id);
  // A source saw the device leave at `seen`. True if it was known (its arrival was reported
  // to arrival_read's caller): the departure is to be reported.
  bool departure_seen(const UsbIdentity& id, Clock::time_point seen);

  // An enumeration that started at `started` found exactly `present`.
  struct Changes {
    std::vector<UsbIdentity> arrived;  // to be read, as after arrival_seen returned true
    std::vector<UsbIdentity> left;     // to be reported, as after departure_seen returned true
  };
  Changes enumerated(const std::set<UsbIdentity>& present, Clock::time_point started);

  bool knows(const UsbIdentity& id) const { return known_.contains(id); }
  // Seen arriving, and neither read nor seen leaving since.
  bool reading(const UsbIdentity& id) const { return reading_.contains(id); }

 private:
  void note_departure(const UsbIdentity& id, Clock::time_point seen);
  void forget_old_departures(Clock::time_point now);

  std::map<UsbIdentity, Clock::time_point> known_;     // when it was first seen present
  std::map<UsbIdentity, Clock::time_point> reading_;   // seen present, descriptors being read
  std::map<UsbIdentity, Clock::time_point> departed_;  // when it was seen leaving
};

}  // namespace usbnet::agent
