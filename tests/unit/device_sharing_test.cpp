// The agent's rules for a device several clients share (pure logic, no sockets).
#include <catch2/catch.hpp>

#include "agent/device_sharing.h"

namespace {

using usbnet::agent::Claimant;
using usbnet::agent::classify_control;
using usbnet::agent::ControlTarget;
using usbnet::agent::DeviceSharing;
using usbnet::agent::interface_of_endpoint;
using namespace usbnet::wire::error_code;
using Setup = std::array<std::uint8_t, usbnet::wire::kSetupLength>;
using Scope = ControlTarget::Scope;

// Configuration 1: interface 0 (endpoints 0x01, 0x81; its alternate setting 1 adds 0x03) and
// interface 1 (endpoint 0x82). Configuration 2: interface 0 with endpoint 0x82.
usbnet::wire::Bytes config(std::uint8_t value, std::initializer_list<usbnet::wire::Bytes> parts) {
  usbnet::wire::Bytes out = {9, 2, 0, 0, 0, value, 0, 0x80, 50};
  for (const auto& p : parts) out.insert(out.end(), p.begin(), p.end());
  out[2] = static_cast<std::uint8_t>(out.size());
  return out;
}
usbnet::wire::Bytes interface(std::uint8_t number, std::uint8_t alt) {
  return {9, 4, number, alt, 1, 0xff, 0, 0, 0};
}
usbnet::wire::Bytes endpoint(std::uint8_t address) { return {7, 5, address, 2, 0, 2, 0}; }

usbnet::wire::DeviceInfo device() {
  usbnet::wire::DeviceInfo info;
  info.device_id = 3;
  info.active_config = 1;
  info.configs = {
      config(1, {interface(0, 0), endpoint(0x01), endpoint(0x81), interface(0, 1), endpoint(0x03),
                 interface(1, 0), endpoint(0x82)}),
      config(2, {interface(0, 0), endpoint(0x82)}),
  };
  return info;
}

int a_session, b_session;
const Claimant kA{&a_session, 1};
const Claimant kA2{&a_session, 2};  // another handle of A's connection
const Claimant kB{&b_session, 1};

Setup setup(std::uint8_t request_type, std::uint8_t request, std::uint16_t value = 0,
            std::uint16_t index = 0, std::uint16_t length = 0) {
  return {request_type,
          request,
          static_cast<std::uint8_t>(value),
          static_cast<std::uint8_t>(value >> 8),
          static_cast<std::uint8_t>(index),
          static_cast<std::uint8_t>(index >> 8),
          static_cast<std::uint8_t>(length),
          static_cast<std::uint8_t>(length >> 8)};
}

}  // namespace

TEST_CASE("endpoints are found in their interface, in every alternate setting") {
  const auto info = device();
  CHECK(interface_of_endpoint(info.configs[0], 0x81) == 0);
  CHECK(interface_of_endpoint(info.configs[0], 0x03) == 0);
  CHECK(interface_of_endpoint(info.configs[0], 0x82) == 1);
  CHECK_FALSE(interface_of_endpoint(info.configs[0], 0x02));
  CHECK(interface_of_endpoint(info.configs[1], 0x82) == 0);
  // A descriptor that claims a length of 0 or runs past the end stops the walk.
  CHECK_FALSE(
      interface_of_endpoint(usbnet::wire::Bytes{9, 4, 0, 0, 0, 0, 0, 0, 0, 0, 5, 0x81}, 0x81));
  CHECK_FALSE(interface_of_endpoint(usbnet::wire::Bytes{9, 4, 0, 0, 0, 0, 0, 0, 0, 7, 5}, 0x81));
}

TEST_CASE("control requests are classified by what they aim at") {
  CHECK(classify_control(setup(0x80, 6, 0x0100, 0, 18)).scope == Scope::ReadOnly);  // descriptor
  CHECK(classify_control(setup(0x81, 6, 0x2200, 0, 64)).scope == Scope::ReadOnly);  // HID report
  CHECK(classify_control(setup(0x82, 0, 0, 0x81, 2)).scope == Scope::ReadOnly);     // status
  CHECK(classify_control(setup(0x80, 8, 0, 0, 1)).scope == Scope::ReadOnly);
  CHECK(classify_control(setup(0x81, 10, 0, 0, 1)).scope == Scope::ReadOnly);
  // SET_FEATURE(ENDPOINT_HALT) on 0x81
  const auto halt = classify_control(setup(0x02, 3, 0, 0x81));
  CHECK(halt.scope == Scope::Endpoint);
  CHECK(halt.index == 0x81);
  // CLEAR_FEATURE on endpoint 0 is the device's.
  CHECK(classify_control(setup(0x02, 1, 0, 0x80)).scope == Scope::Device);
  const auto class_request = classify_control(setup(0xa1, 1, 0x0100, 0x0001, 8));  // GET_REPORT
  CHECK(class_request.scope == Scope::Interface);
  CHECK(class_request.index == 1);
  CHECK(classify_control(setup(0x40, 7)).scope == Scope::Device);           // vendor, device
  CHECK(classify_control(setup(0xc0, 2, 0, 0, 4)).scope == Scope::Device);  // vendor IN, device
  CHECK(classify_control(setup(0x00, 9, 1)).scope == Scope::Device);        // SET_CONFIGURATION
  CHECK(classify_control(setup(0x00, 6, 0x0100)).scope == Scope::Device);   // a "GET" sent OUT
}

TEST_CASE("an interface is held by one handle at a time") {
  DeviceSharing sharing;
  CHECK_FALSE(sharing.claim(3, 0, kA));
  CHECK_FALSE(sharing.claim(3, 0, kA));  // again through the same handle
  const auto busy = sharing.claim(3, 0, kB);
  REQUIRE(busy);
  CHECK(busy->code == kBusy);
  CHECK(busy->reason == "interface 0 of device 3 is claimed by another client");
  const auto same_connection = sharing.claim(3, 0, kA2);
  REQUIRE(same_connection);
  CHECK(same_connection->reason ==
        "interface 0 of device 3 is claimed through another handle of this connection");
  sharing.release(3, 0, kB);  // not B's: nothing happens
  CHECK(sharing.claim(3, 0, kB));
  sharing.release(3, 0, kA);
  CHECK_FALSE(sharing.claim(3, 0, kB));
  CHECK_FALSE(sharing.claim(4, 0, kA));  // another device
}

TEST_CASE("transfers on an endpoint need its interface's claim") {
  DeviceSharing sharing;
  const auto info = device();
  const auto unclaimed = sharing.endpoint_transfer(info, 0x81, kA);
  REQUIRE(unclaimed);
  CHECK(unclaimed->code == kNotFound);
  REQUIRE_FALSE(sharing.claim(3, 0, kA));
  CHECK_FALSE(sharing.endpoint_transfer(info, 0x81, kA));
  CHECK_FALSE(sharing.endpoint_transfer(info, 0x03, kA));
  const auto stolen = sharing.endpoint_transfer(info, 0x81, kB);
  REQUIRE(stolen);
  CHECK(stolen->code == kBusy);
  CHECK(sharing.endpoint_transfer(info, 0x82, kA));  // interface 1: nobody claimed it
  CHECK(sharing.endpoint_transfer(info, 0x05, kA));  // no interface has it
  // In configuration 2, 0x82 belongs to interface 0.
  sharing.configuration_selected(3, 2);
  CHECK_FALSE(sharing.endpoint_transfer(info, 0x82, kA));
  CHECK(sharing.endpoint_transfer(info, 0x82, kB));
}

TEST_CASE("halts, alternate settings and kernel drivers are the holder's") {
  DeviceSharing sharing;
  const auto info = device();
  REQUIRE_FALSE(sharing.claim(3, 0, kA));
  CHECK_FALSE(sharing.alt_setting(3, 0, kA));
  CHECK(sharing.alt_setting(3, 0, kB)->code == kBusy);
  CHECK(sharing.alt_setting(3, 1, kA)->code == kNotFound);
  CHECK_FALSE(sharing.clear_halt(info, 0x81, kA));
  CHECK(sharing.clear_halt(info, 0x81, kB)->code == kBusy);
  CHECK(sharing.clear_halt(info, 0x82, kB)->code == kBusy);  // unheld, but A holds the device
  CHECK_FALSE(sharing.kernel_driver(3, 0, kA));
  CHECK(sharing.kernel_driver(3, 0, kB)->code == kBusy);
  CHECK_FALSE(sharing.kernel_driver(3, 1, kB));  // nobody holds interface 1
  CHECK(sharing.control_transfer(info, setup(0x02, 3, 0, 0x81), kB)->code == kBusy);
  CHECK_FALSE(sharing.control_transfer(info, setup(0x02, 3, 0, 0x81), kA));
}

TEST_CASE("whole-device actions wait until no other handle holds an interface") {
  DeviceSharing sharing;
  const auto info = device();
  CHECK_FALSE(sharing.device_wide(3, kB, "reset"));
  CHECK_FALSE(sharing.control_transfer(info, setup(0x40, 7), kB));
  CHECK_FALSE(sharing.set_configuration(3, kB));
  REQUIRE_FALSE(sharing.claim(3, 1, kA));
  const auto reset = sharing.device_wide(3, kB, "reset");
  REQUIRE(reset);
  CHECK(reset->code == kBusy);
  CHECK(reset->reason ==
        "reset acts on the whole device, and interface 1 of device 3 is claimed by another client");
  CHECK_FALSE(sharing.device_wide(3, kA, "reset"));
  CHECK(sharing.control_transfer(info, setup(0x40, 7), kB)->code == kBusy);
  CHECK(sharing.control_transfer(info, setup(0xc0, 2, 0, 0, 4), kB)->code == kBusy);
  CHECK_FALSE(sharing.control_transfer(info, setup(0x40, 7), kA));
  // Requests to an interface nobody holds count as the device's.
  CHECK(sharing.control_transfer(info, setup(0x21, 9, 0, 0), kB)->code == kBusy);
  // Reading descriptors and status is everyone's.
  CHECK_FALSE(sharing.control_transfer(info, setup(0x80, 6, 0x0100, 0, 18), kB));
  CHECK_FALSE(sharing.control_transfer(info, setup(0x82, 0, 0, 0x82, 2), kB));
  // SET_CONFIGURATION: not while anyone holds an interface, its own handle included.
  CHECK(sharing.set_configuration(3, kB)->code == kBusy);
  CHECK(sharing.set_configuration(3, kA)->code == kBusy);
  sharing.forget_device(3);
  CHECK_FALSE(sharing.device_wide(3, kB, "reset"));
}
