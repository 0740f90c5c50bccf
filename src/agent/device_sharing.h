// Who may do what on a device that several clients have open (pure logic, io thread).
//
// The rules, as on a host whose programs share a device through usbfs, only enforced for every
// client (docs/PROTOCOL.md, "Sharing a device"):
// - an interface is held by at most one handle, the one that claimed it;
// - transfers on an endpoint other than 0, SET_ALT_SETTING, and (by any name) halting or
//   clearing an endpoint's halt: only through the handle that holds the endpoint's interface;
// - control requests aimed at an interface or an endpoint: only by its holder; if nobody
//   holds it, they count as requests to the device;
// - requests that act on the whole device (reset, configuration, any non-standard or state
//   changing request to the device): refused while another handle holds an interface;
// - KERNEL_DRIVER on an interface: refused while another handle holds it;
// - standard read-only requests (GET_DESCRIPTOR, GET_STATUS, GET_CONFIGURATION, GET_INTERFACE)
//   and GET_CONFIGURATION: open to every handle.
// A refusal's text names the interface and device, never the other client.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>

#include "usbnet/messages.h"

namespace usbnet::agent {

// A handle of a client: `client` identifies the connection (the session), `handle` the open.
struct Claimant {
  const void* client = nullptr;
  std::uint32_t handle = 0;
  bool operator==(const Claimant&) const = default;
};

// Why an action is refused: a libusb error code (BUSY, NOT_FOUND) and a sentence for a person.
struct Refusal {
  std::int32_t code;
  std::string reason;
};
using Verdict = std::optional<Refusal>;  // nullopt: allowed

// What a control request's setup packet aims at.
struct ControlTarget {
  enum class Scope { ReadOnly, Device, Interface, Endpoint };
  Scope scope;
  std::uint8_t index = 0;  // the interface number or endpoint address
};
ControlTarget classify_control(const std::array<std::uint8_t, wire::kSetupLength>& setup);

// The interface that declares `endpoint` in a raw configuration descriptor (any alternate
// setting), or nullopt.
std::optional<std::uint8_t> interface_of_endpoint(wire::ByteView config, std::uint8_t endpoint);

class DeviceSharing {
 public:
  // Claims. claim() refuses (BUSY) when another handle holds the interface; claiming it again
  // through the same handle is allowed.
  Verdict claim(std::uint32_t device_id, std::uint8_t interface_number, Claimant who);
  void release(std::uint32_t device_id, std::uint8_t interface_number, Claimant who);
  // The device left: its claims and state go.
  void forget_device(std::uint32_t device_id);
  // A configuration was selected (by SET_CONFIGURATION or a control request): endpoints are
  // looked up in it from now on.
  void configuration_selected(std::uint32_t device_id, std::uint8_t value);

  // URBs on a non-zero endpoint, and CLEAR_HALT.
  Verdict endpoint_transfer(const wire::DeviceInfo& device, std::uint8_t endpoint,
                            Claimant who) const;
  Verdict clear_halt(const wire::DeviceInfo& device, std::uint8_t endpoint, Claimant who) const;
  // Control URBs (endpoint 0).
  Verdict control_transfer(const wire::DeviceInfo& device,
                           const std::array<std::uint8_t, wire::kSetupLength>& setup,
                           Claimant who) const;
  Verdict alt_setting(std::uint32_t device_id, std::uint8_t interface_number, Claimant who) const;
  Verdict kernel_driver(std::uint32_t device_id, std::uint8_t interface_number, Claimant who) const;
  // RESET_DEVICE and other whole-device actions; `what` names it in the refusal.
  Verdict device_wide(std::uint32_t device_id, Claimant who, std::string_view what) const;
  // SET_CONFIGURATION: as on Linux, not while any handle (this one included) holds an interface.
  Verdict set_configuration(std::uint32_t device_id, Claimant who) const;

 private:
  std::optional<Claimant> holder(std::uint32_t device_id, std::uint8_t interface_number) const;
  std::optional<std::uint8_t> interface_of(const wire::DeviceInfo& device,
                                           std::uint8_t endpoint) const;
  // Allowed only through the handle holding the interface.
  Verdict held_by(std::uint32_t device_id, std::uint8_t interface_number, Claimant who) const;
  // The holder's rule if someone holds it, else the device's.
  Verdict holder_or_device(std::uint32_t device_id, std::uint8_t interface_number, Claimant who,
                           std::string_view what) const;

  std::map<std::pair<std::uint32_t, std::uint8_t>, Claimant> claims_;  // (device, interface)
  std::map<std::uint32_t, std::uint8_t> configuration_;  // selected since export, by device
};

}  // namespace usbnet::agent
