#include "agent/request_access.h"

namespace usbnet::agent {

using wire::error_code::kNoDevice;

Verdict request_access(DeviceRegistry& registry, std::uint32_t device_id, Claimant who,
                       const DeviceRequest& request) {
  DeviceSharing& sharing = registry.sharing();
  return std::visit(
      [&](const auto& m) -> Verdict {
        using M = std::decay_t<decltype(m)>;
        if constexpr (std::is_same_v<M, wire::ClaimInterface>) {
          return sharing.claim(device_id, m.interface_number, who);
        } else if constexpr (std::is_same_v<M, wire::SetConfiguration>) {
          return sharing.set_configuration(device_id, who);
        } else if constexpr (std::is_same_v<M, wire::SetAltSetting>) {
          return sharing.alt_setting(device_id, m.interface_number, who);
        } else if constexpr (std::is_same_v<M, wire::ClearHalt>) {
          const ExportedDevice* device = registry.find(device_id);
          if (!device) return Refusal{kNoDevice, "the device has left"};
          return sharing.clear_halt(device->info, m.endpoint, who);
        } else if constexpr (std::is_same_v<M, wire::ResetDevice>) {
          return sharing.device_wide(device_id, who, "a reset");
        } else if constexpr (std::is_same_v<M, wire::KernelDriver>) {
          return sharing.kernel_driver(device_id, m.interface_number, who);
        } else {
          return std::nullopt;  // GET_CONFIGURATION, RELEASE_INTERFACE: the handle's own business
        }
      },
      request);
}

Verdict urb_access(DeviceRegistry& registry, std::uint32_t device_id, Claimant who,
                   const wire::UrbSubmit& urb) {
  const ExportedDevice* device = registry.find(device_id);
  if (!device) return Refusal{kNoDevice, "the device has left"};
  if (urb.type == wire::UrbType::Control) {
    return registry.sharing().control_transfer(device->info, urb.setup, who);
  }
  return registry.sharing().endpoint_transfer(device->info, urb.endpoint, who);
}

}  // namespace usbnet::agent
