// The agent's bookkeeping of real devices reported by two sources (libusb's hotplug callback
// and periodic enumerations): each arrival and departure once, whatever the order in which the
// two sources see it.
#include <catch2/catch.hpp>

#include "agent/device_presence.h"

using usbnet::agent::DevicePresence;
using usbnet::agent::UsbIdentity;
using namespace std::chrono_literals;

namespace {

const DevicePresence::Clock::time_point t0{};
const UsbIdentity stick{1, {2}, 5};
const UsbIdentity mouse{1, {3}, 6};
const UsbIdentity stick_again{1, {2}, 9};  // the same port, plugged in again: a new address

// An arrival from either source, read at once.
bool arrives(DevicePresence& p, const UsbIdentity& id, DevicePresence::Clock::time_point seen) {
  return p.arrival_seen(id, seen) && p.arrival_read(id);
}

}  // namespace

TEST_CASE("an enumeration alone reports arrivals and departures once") {
  DevicePresence p;
  auto c = p.enumerated({stick, mouse}, t0);
  CHECK(c.arrived == std::vector{stick, mouse});
  CHECK(c.left.empty());
  CHECK(p.arrival_read(stick));
  CHECK(p.arrival_read(mouse));

  // The same devices again: nothing to say.
  c = p.enumerated({stick, mouse}, t0 + 1s);
  CHECK(c.arrived.empty());
  CHECK(c.left.empty());

  c = p.enumerated({mouse}, t0 + 2s);
  CHECK(c.left == std::vector{stick});
  CHECK(c.arrived.empty());
  c = p.enumerated({mouse}, t0 + 3s);
  CHECK(c.left.empty());

  c = p.enumerated({mouse, stick_again}, t0 + 4s);
  CHECK(c.arrived == std::vector{stick_again});
  CHECK(c.left.empty());
}

TEST_CASE("a change both sources see is reported by the first only") {
  DevicePresence p;
  // Hotplug first: the enumeration that follows finds the device already known.
  CHECK(arrives(p, stick, t0));
  auto c = p.enumerated({stick}, t0 + 1s);
  CHECK(c.arrived.empty());
  CHECK(p.departure_seen(stick, t0 + 2s));
  c = p.enumerated({}, t0 + 3s);
  CHECK(c.left.empty());

  // The enumeration first: hotplug's late reports are ignored.
  c = p.enumerated({stick_again}, t0 + 4s);
  REQUIRE(c.arrived == std::vector{stick_again});
  CHECK(p.arrival_read(stick_again));
  CHECK_FALSE(p.arrival_seen(stick_again, t0 + 4500ms));
  c = p.enumerated({}, t0 + 5s);
  CHECK(c.left == std::vector{stick_again});
  CHECK_FALSE(p.departure_seen(stick_again, t0 + 5500ms));
}

TEST_CASE("an enumeration says nothing of devices that arrived after it started") {
  DevicePresence p;
  // The enumeration started at 1 s, hotplug reported the mouse at 1.2 s, the enumeration's
  // result (without the mouse) comes after: the mouse stays.
  CHECK(arrives(p, mouse, t0 + 1200ms));
  auto c = p.enumerated({}, t0 + 1s);
  CHECK(c.left.empty());
  CHECK(p.knows(mouse));
  // The next one, started later, does.
  c = p.enumerated({}, t0 + 2s);
  CHECK(c.left == std::vector{mouse});
}

TEST_CASE("a sighting older than a departure does not bring the device back") {
  DevicePresence p;
  CHECK(arrives(p, stick, t0));
  // Hotplug saw it leave at 1.5 s; an enumeration that started at 1 s still found it.
  CHECK(p.departure_seen(stick, t0 + 1500ms));
  auto c = p.enumerated({stick}, t0 + 1s);
  CHECK(c.arrived.empty());
  CHECK(c.left.empty());
  CHECK_FALSE(p.knows(stick));
  // A queued hotplug arrival from before the departure: ignored too.
  CHECK_FALSE(p.arrival_seen(stick, t0 + 1400ms));
}

TEST_CASE("a device that leaves while it is being read is never reported") {
  DevicePresence p;
  SECTION("hotplug says so") {
    REQUIRE(p.arrival_seen(stick, t0));
    CHECK(p.reading(stick));
    CHECK_FALSE(p.departure_seen(stick, t0 + 100ms));
  }
  SECTION("an enumeration says so") {
    REQUIRE(p.enumerated({stick}, t0).arrived == std::vector{stick});
    auto c = p.enumerated({}, t0 + 1s);
    CHECK(c.left.empty());  // it was never reported: nothing to take back
  }
  CHECK_FALSE(p.reading(stick));
  CHECK_FALSE(p.arrival_read(stick));
  CHECK_FALSE(p.knows(stick));
  // Nor read twice while it is being read.
  CHECK(p.arrival_seen(mouse, t0 + 2s));
  CHECK_FALSE(p.arrival_seen(mouse, t0 + 2100ms));
  CHECK(p.enumerated({mouse}, t0 + 3s).arrived.empty());
}

TEST_CASE("a device that is not exported (a hub) is known all the same") {
  DevicePresence p;
  REQUIRE(p.enumerated({stick}, t0).arrived == std::vector{stick});
  CHECK(p.arrival_read(stick));                           // the backend decides not to export it
  CHECK(p.enumerated({stick}, t0 + 1s).arrived.empty());  // not read again every round
}

TEST_CASE("identities print as bus, port path and address") {
  CHECK(UsbIdentity{1, {2, 3}, 7}.to_string() == "bus 1 port 2.3 address 7");
  CHECK(UsbIdentity{2, {}, 1}.to_string() == "bus 2 port - address 1");
}
