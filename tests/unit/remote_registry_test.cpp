// The shim's registry of remote devices (pure logic): which records USBNET_DEVICES selects,
// the hubs attached with them, bus numbers, parents, departures and the loss of an agent.
#include <catch2/catch.hpp>

#include "interpose/remote_registry.h"

using namespace usbnet;
using usbnet::interpose::RemoteRegistry;

namespace {

// A record as an agent lists it: its id, its hub's id, and what it is.
wire::DeviceInfo record(std::uint32_t id, std::uint32_t parent, std::uint16_t vendor,
                        std::uint16_t product, bool hub, std::uint8_t bus = 1) {
  wire::DeviceInfo info;
  info.device_id = id;
  info.parent_id = parent;
  info.bus_number = bus;
  info.device_address = static_cast<std::uint8_t>(id);
  info.device_descriptor[4] = hub ? 9 : 0;
  info.device_descriptor[8] = static_cast<std::uint8_t>(vendor);
  info.device_descriptor[9] = static_cast<std::uint8_t>(vendor >> 8);
  info.device_descriptor[10] = static_cast<std::uint8_t>(product);
  info.device_descriptor[11] = static_cast<std::uint8_t>(product >> 8);
  return info;
}

// What the registry's caller makes of a record: here, "agent/id@bus".
struct Made {
  std::string name;
  bool operator==(const Made&) const = default;
};

auto maker() {
  return [](const wire::DeviceInfo& info, std::uint8_t bus) {
    return Made{std::to_string(info.device_id) + "@" + std::to_string(bus)};
  };
}

std::vector<std::string> names(const std::vector<Made>& made) {
  std::vector<std::string> out;
  for (const Made& m : made) out.push_back(m.name);
  return out;
}

DeviceFilter filter(const char* text) { return DeviceFilter::parse(text).value(); }

}  // namespace

TEST_CASE("remote registry: a selected device comes with the hubs above it, from the top down") {
  RemoteRegistry<Made> registry(filter("1209:0001"));
  CHECK(registry.attach(0, record(1, 0, 0x1d6b, 0x0002, true), maker()).empty());  // aside
  CHECK(registry.attach(0, record(2, 1, 0x05e3, 0x0608, true), maker()).empty());
  CHECK(registry.attach(0, record(3, 2, 0x1209, 0x0002, false), maker()).empty());  // left out
  const auto taken = registry.attach(0, record(4, 2, 0x1209, 0x0001, false), maker());
  CHECK(names(taken) == std::vector<std::string>{"1@201", "2@201", "4@201"});
  CHECK(names(registry.attached()) == std::vector<std::string>{"1@201", "2@201", "4@201"});
  // Its parent is the hub, whose parent is the root hub, which has none.
  CHECK(registry.parent_of(0, record(4, 2, 0x1209, 0x0001, false)) == Made{"2@201"});
  CHECK(registry.parent_of(0, record(2, 1, 0x05e3, 0x0608, true)) == Made{"1@201"});
  CHECK_FALSE(registry.parent_of(0, record(1, 0, 0x1d6b, 0x0002, true)));
  // Listed again (a second device list): nothing new.
  CHECK(registry.attach(0, record(4, 2, 0x1209, 0x0001, false), maker()).empty());
  // A second device under the same hub brings no hub again.
  CHECK(names(registry.attach(0, record(5, 2, 0x1209, 0x0001, false), maker())) ==
        std::vector<std::string>{"5@201"});
}

TEST_CASE("remote registry: a hub that leaves while aside is forgotten, its device has no parent") {
  RemoteRegistry<Made> registry(filter("1209:*"));
  registry.attach(0, record(1, 0, 0x1d6b, 0x0002, true), maker());
  CHECK_FALSE(registry.detach(0, 1));  // it was not attached, only known
  const auto taken = registry.attach(0, record(2, 1, 0x1209, 0x0001, false), maker());
  CHECK(names(taken) == std::vector<std::string>{"2@201"});
  CHECK_FALSE(registry.parent_of(0, record(2, 1, 0x1209, 0x0001, false)));
  CHECK(registry.detach(0, 2) == Made{"2@201"});
  CHECK(registry.attached().empty());
}

TEST_CASE("remote registry: parent ids that form a loop end the walk") {
  RemoteRegistry<Made> registry(filter("1209:0001"));
  registry.attach(0, record(1, 2, 0x05e3, 0x0608, true), maker());  // each names the other
  registry.attach(0, record(2, 1, 0x05e3, 0x0608, true), maker());
  const auto taken = registry.attach(0, record(3, 2, 0x1209, 0x0001, false), maker());
  CHECK(names(taken) == std::vector<std::string>{"1@201", "2@201", "3@201"});
}

TEST_CASE(
    "remote registry: each agent's buses get their own numbers, and a lost agent's devices "
    "leave children first") {
  RemoteRegistry<Made> registry(DeviceFilter::all());
  registry.attach(0, record(1, 0, 0x1d6b, 0x0002, true, 1), maker());
  registry.attach(0, record(2, 1, 0x1209, 0x0001, false, 1), maker());
  registry.attach(0, record(3, 0, 0x1d6b, 0x0003, true, 2), maker());
  registry.attach(1, record(1, 0, 0x1d6b, 0x0002, true, 1), maker());
  registry.attach(1, record(2, 1, 0x1209, 0x0001, false, 1), maker());
  CHECK(names(registry.attached()) ==
        std::vector<std::string>{"1@201", "2@201", "3@202", "1@203", "2@203"});
  CHECK(names(registry.agent_lost(0)) == std::vector<std::string>{"3@202", "2@201", "1@201"});
  CHECK(names(registry.attached()) == std::vector<std::string>{"1@203", "2@203"});
  // Its devices come back with the numbers they had.
  CHECK(names(registry.attach(0, record(1, 0, 0x1d6b, 0x0002, true, 1), maker())) ==
        std::vector<std::string>{"1@201"});
  CHECK(names(registry.clear()) == std::vector<std::string>{"1@201", "1@203", "2@203"});
  CHECK(registry.attached().empty());
}
