// The agent's device registry as topology: which hubs are exported with a device, the
// parent_id each record gets, and the order of the list (hubs before their children), whatever
// order the backends report the devices in. Pure logic: no session listens.
#include <catch2/catch.hpp>

#include "agent/registry.h"
#include "common/topology.h"

using namespace usbnet;
using namespace usbnet::agent;

namespace {

// A device that is only its record: the registry never opens devices.
class RecordOnly final : public Device {
 public:
  explicit RecordOnly(wire::DeviceInfo info) : info_(std::move(info)) {}
  wire::DeviceInfo info() const override { return info_; }
  Expected<std::unique_ptr<DeviceHandle>, std::int32_t> open() override {
    return Unexpected{wire::error_code::kNotSupported};
  }

 private:
  wire::DeviceInfo info_;
};

wire::DeviceInfo record(std::uint8_t bus, std::uint8_t address, std::vector<std::uint8_t> ports,
                        std::uint16_t vendor, std::uint16_t product, bool hub) {
  wire::DeviceInfo info;
  info.bus_number = bus;
  info.device_address = address;
  info.port_numbers = std::move(ports);
  info.device_descriptor[0] = 18;
  info.device_descriptor[1] = 1;
  info.device_descriptor[4] = hub ? 9 : 0;
  info.device_descriptor[8] = static_cast<std::uint8_t>(vendor);
  info.device_descriptor[9] = static_cast<std::uint8_t>(vendor >> 8);
  info.device_descriptor[10] = static_cast<std::uint8_t>(product);
  info.device_descriptor[11] = static_cast<std::uint8_t>(product >> 8);
  return info;
}

DevicePtr device(std::uint8_t bus, std::uint8_t address, std::vector<std::uint8_t> ports,
                 std::uint16_t vendor, std::uint16_t product, bool hub = false) {
  return std::make_shared<RecordOnly>(record(bus, address, std::move(ports), vendor, product, hub));
}

DeviceFilter filter(const char* text) { return DeviceFilter::parse(text).value(); }

}  // namespace

TEST_CASE("topology: a device hangs from the hub on its bus whose port path is one port shorter") {
  const auto root = record(1, 1, {}, 0x1d6b, 0x0002, true);
  const auto hub = record(1, 2, {3}, 0x05e3, 0x0608, true);
  const auto dev = record(1, 5, {3, 4}, 0x1209, 0x0001, false);
  CHECK(topology::is_hub(root));
  CHECK(topology::is_root(root));
  CHECK_FALSE(topology::is_root(hub));
  CHECK(topology::is_parent_of(root, hub));
  CHECK(topology::is_parent_of(hub, dev));
  CHECK_FALSE(topology::is_parent_of(root, dev));  // not directly
  CHECK_FALSE(topology::is_parent_of(dev, hub));
  CHECK_FALSE(topology::is_parent_of(record(2, 1, {}, 0x1d6b, 0x0002, true), hub));  // other bus
  // Only a hub is anyone's parent.
  CHECK_FALSE(topology::is_parent_of(record(1, 2, {3}, 0x1209, 0x0002, false), dev));
  CHECK(topology::vendor_id(dev) == 0x1209);
  CHECK(topology::product_id(dev) == 0x0001);
}

TEST_CASE("registry: a device is exported with the hubs above it, root first") {
  DeviceRegistry registry(filter("1209:0001"));
  registry.device_arrived(device(1, 1, {}, 0x1d6b, 0x0002, true));
  registry.device_arrived(device(1, 2, {1}, 0x05e3, 0x0608, true));
  registry.device_arrived(device(1, 3, {2}, 0x05e3, 0x0608, true));  // nothing below it
  CHECK(registry.list().empty());  // hubs the filter does not name wait for a device
  registry.device_arrived(device(1, 4, {1, 3}, 0x1209, 0x0002));  // not exported
  CHECK(registry.list().empty());
  registry.device_arrived(device(1, 5, {1, 4}, 0x1209, 0x0001));
  const auto list = registry.list();
  REQUIRE(list.size() == 3);
  CHECK(list[0].device_address == 1);
  CHECK(list[0].parent_id == 0);
  CHECK(list[1].device_address == 2);
  CHECK(list[1].parent_id == list[0].device_id);
  CHECK(list[2].device_address == 5);
  CHECK(list[2].parent_id == list[1].device_id);
  CHECK(list[0].device_id < list[1].device_id);
  CHECK(list[1].device_id < list[2].device_id);
}

TEST_CASE("registry: a device reported before its hub waits for it") {
  DeviceRegistry registry(DeviceFilter::all());
  registry.device_arrived(device(2, 7, {1, 2}, 0x1209, 0x0001));
  CHECK(registry.list().empty());
  registry.device_arrived(device(2, 3, {1}, 0x05e3, 0x0608, true));
  CHECK(registry.list().empty());  // the root hub is still missing
  registry.device_arrived(device(2, 1, {}, 0x1d6b, 0x0003, true));
  const auto list = registry.list();
  REQUIRE(list.size() == 3);
  CHECK(list[0].device_address == 1);
  CHECK(list[1].device_address == 3);
  CHECK(list[1].parent_id == list[0].device_id);
  CHECK(list[2].device_address == 7);
  CHECK(list[2].parent_id == list[1].device_id);
}

TEST_CASE("registry: a filter that names a hub exports it alone, and a hub that leaves is gone") {
  DeviceRegistry registry(filter("1d6b:*"));
  const DevicePtr root = device(1, 1, {}, 0x1d6b, 0x0002, true);
  registry.device_arrived(root);
  registry.device_arrived(device(1, 2, {1}, 0x1209, 0x0001));
  auto list = registry.list();
  REQUIRE(list.size() == 1);
  const std::uint32_t id = list[0].device_id;
  CHECK(registry.find(id));
  registry.device_left(root);
  CHECK(registry.list().empty());
  CHECK_FALSE(registry.find(id));
}
