#include "agent/device_sharing.h"

#include <fmt/format.h>

namespace usbnet::agent {

using namespace wire::error_code;

namespace {

constexpr std::uint8_t kTypeConfiguration = 2;
constexpr std::uint8_t kTypeInterface = 4;
constexpr std::uint8_t kTypeEndpoint = 5;

// Standard requests that only read (USB 2.0, 9.4).
constexpr std::uint8_t kGetStatus = 0;
constexpr std::uint8_t kGetDescriptor = 6;
constexpr std::uint8_t kGetConfiguration = 8;
constexpr std::uint8_t kGetInterface = 10;

std::string claimed_elsewhere(std::uint32_t device_id, std::uint8_t interface_number,
                              const Claimant& holder, const Claimant& who) {
  return fmt::format("interface {} of device {} is claimed {}", interface_number, device_id,
                     holder.client == who.client ? "through another handle of this connection"
                                                 : "by another client");
}

}  // namespace

ControlTarget classify_control(const std::array<std::uint8_t, wire::kSetupLength>& setup) {
  const std::uint8_t request_type = setup[0];
  const bool in = (request_type & 0x80) != 0;
  const bool standard = ((request_type >> 5) & 0x03) == 0;
  const std::uint8_t recipient = request_type & 0x1f;
  const std::uint8_t request = setup[1];
  const std::uint8_t index = setup[4];  // wIndex's low byte: the interface or endpoint
  using Scope = ControlTarget::Scope;
  if (standard && in &&
      (request == kGetStatus || request == kGetDescriptor || request == kGetConfiguration ||
       request == kGetInterface)) {
    return {Scope::ReadOnly, index};
  }
  if (recipient == 1) return {Scope::Interface, index};
  // Endpoint 0 belongs to the device.
  if (recipient == 2 && (index & 0x0f) != 0) return {Scope::Endpoint, index};
  return {Scope::Device, 0};
}

std::optional<std::uint8_t> interface_of_endpoint(wire::ByteView config, std::uint8_t endpoint) {
  std::optional<std::uint8_t> interface_number;
  // Each descriptor starts with bLength and bDescriptorType; a bLength under 2 ends the walk.
  for (std::size_t at = 0; at + 2 < config.size() && config[at] >= 2; at += config[at]) {
    const std::uint8_t type = config[at + 1];
    if (type == kTypeInterface) interface_number = config[at + 2];
    if (type == kTypeEndpoint && config[at + 2] == endpoint && interface_number) {
      return interface_number;
    }
  }
  return std::nullopt;
}

Verdict DeviceSharing::claim(std::uint32_t device_id, std::uint8_t interface_number, Claimant who) {
  auto [it, inserted] = claims_.try_emplace({device_id, interface_number}, who);
  if (inserted || it->second == who) return std::nullopt;
  return Refusal{kBusy, claimed_elsewhere(device_id, interface_number, it->second, who)};
}

void DeviceSharing::release(std::uint32_t device_id, std::uint8_t interface_number, Claimant who) {
  auto it = claims_.find({device_id, interface_number});
  if (it != claims_.end() && it->second == who) claims_.erase(it);
}

void DeviceSharing::forget_device(std::uint32_t device_id) {
  std::erase_if(claims_, [&](const auto& claim) { return claim.first.first == device_id; });
  configuration_.erase(device_id);
}

void DeviceSharing::configuration_selected(std::uint32_t device_id, std::uint8_t value) {
  configuration_[device_id] = value;
}

std::optional<Claimant> DeviceSharing::holder(std::uint32_t device_id,
                                              std::uint8_t interface_number) const {
  auto it = claims_.find({device_id, interface_number});
  if (it == claims_.end()) return std::nullopt;
  return it->second;
}

std::optional<std::uint8_t> DeviceSharing::interface_of(const wire::DeviceInfo& device,
                                                        std::uint8_t endpoint) const {
  auto selected = configuration_.find(device.device_id);
  const std::uint8_t active =
      selected != configuration_.end() ? selected->second : device.active_config;
  for (const wire::Bytes& config : device.configs) {
    if (config.size() >= 9 && config[1] == kTypeConfiguration && config[5] == active) {
      return interface_of_endpoint(config, endpoint);
    }
  }
  // Unconfigured, or a configuration the record does not have: any configuration's owner.
  for (const wire::Bytes& config : device.configs) {
    if (auto found = interface_of_endpoint(config, endpoint)) return found;
  }
  return std::nullopt;
}

Verdict DeviceSharing::held_by(std::uint32_t device_id, std::uint8_t interface_number,
                               Claimant who) const {
  const auto h = holder(device_id, interface_number);
  if (h == who) return std::nullopt;
  if (h) return Refusal{kBusy, claimed_elsewhere(device_id, interface_number, *h, who)};
  return Refusal{kNotFound, fmt::format("interface {} of device {} is not claimed through this "
                                        "handle (claim it first)",
                                        interface_number, device_id)};
}

Verdict DeviceSharing::holder_or_device(std::uint32_t device_id, std::uint8_t interface_number,
                                        Claimant who, std::string_view what) const {
  if (holder(device_id, interface_number)) return held_by(device_id, interface_number, who);
  return device_wide(device_id, who, what);
}

Verdict DeviceSharing::endpoint_transfer(const wire::DeviceInfo& device, std::uint8_t endpoint,
                                         Claimant who) const {
  const auto interface_number = interface_of(device, endpoint);
  if (!interface_number) {
    return Refusal{kNotFound, fmt::format("endpoint 0x{:02x} is in no interface of device {}",
                                          endpoint, device.device_id)};
  }
  return held_by(device.device_id, *interface_number, who);
}

Verdict DeviceSharing::clear_halt(const wire::DeviceInfo& device, std::uint8_t endpoint,
                                  Claimant who) const {
  const auto interface_number = interface_of(device, endpoint);
  if (!interface_number) return device_wide(device.device_id, who, "clearing a halt");
  return holder_or_device(device.device_id, *interface_number, who, "clearing a halt");
}

Verdict DeviceSharing::control_transfer(const wire::DeviceInfo& device,
                                        const std::array<std::uint8_t, wire::kSetupLength>& setup,
                                        Claimant who) const {
  const ControlTarget target = classify_control(setup);
  using Scope = ControlTarget::Scope;
  switch (target.scope) {
    case Scope::ReadOnly:
      return std::nullopt;
    case Scope::Interface:
      return holder_or_device(device.device_id, target.index, who, "the control request");
    case Scope::Endpoint:
      if (const auto interface_number = interface_of(device, target.index)) {
        return holder_or_device(device.device_id, *interface_number, who, "the control request");
      }
      break;
    case Scope::Device:
      break;
  }
  return device_wide(device.device_id, who, "the control request");
}

Verdict DeviceSharing::alt_setting(std::uint32_t device_id, std::uint8_t interface_number,
                                   Claimant who) const {
  return held_by(device_id, interface_number, who);
}

Verdict DeviceSharing::kernel_driver(std::uint32_t device_id, std::uint8_t interface_number,
                                     Claimant who) const {
  const auto h = holder(device_id, interface_number);
  if (!h || *h == who) return std::nullopt;
  return Refusal{kBusy, claimed_elsewhere(device_id, interface_number, *h, who)};
}

Verdict DeviceSharing::device_wide(std::uint32_t device_id, Claimant who,
                                   std::string_view what) const {
  for (auto it = claims_.lower_bound({device_id, 0});
       it != claims_.end() && it->first.first == device_id; ++it) {
    if (it->second == who) continue;
    return Refusal{kBusy,
                   fmt::format("{} acts on the whole device, and {}", what,
                               claimed_elsewhere(device_id, it->first.second, it->second, who))};
  }
  return std::nullopt;
}

Verdict DeviceSharing::set_configuration(std::uint32_t device_id, Claimant who) const {
  auto it = claims_.lower_bound({device_id, 0});
  if (it == claims_.end() || it->first.first != device_id) return std::nullopt;
  if (it->second == who) {
    return Refusal{kBusy, fmt::format("interface {} of device {} is claimed through this handle: "
                                      "release it before changing the configuration",
                                      it->first.second, device_id)};
  }
  return device_wide(device_id, who, "a configuration change");
}

}  // namespace usbnet::agent
