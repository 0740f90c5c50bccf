// What the sharing rules (device_sharing.h) say of one request of a client's handle, as the
// wire carries it: a device request, or a URB. A CLAIM_INTERFACE that is allowed takes the
// claim (the caller gives it back if the device then refuses it).
#pragma once

#include <cstdint>

#include "agent/device.h"
#include "agent/device_sharing.h"
#include "agent/registry.h"

namespace usbnet::agent {

Verdict request_access(DeviceRegistry& registry, std::uint32_t device_id, Claimant who,
                       const DeviceRequest& request);
Verdict urb_access(DeviceRegistry& registry, std::uint32_t device_id, Claimant who,
                   const wire::UrbSubmit& urb);

}  // namespace usbnet::agent
