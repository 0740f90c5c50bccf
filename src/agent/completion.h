// The URB_COMPLETE of a transfer the device has finished, and what keeps its payload alive
// until the stream has written it: the transfer itself, or for isochronous IN a compact copy
// of the packets' bytes (each packet's actual bytes, back to back).
#pragma once

#include <memory>
#include <string>

#include "agent/device.h"
#include "usbnet/messages.h"

namespace usbnet::agent {

struct Completion {
  wire::UrbComplete message;
  std::shared_ptr<const void> keepalive;
};

// `peer` names the client in the one log line of a backend fault (iso results that do not
// match the packets).
Completion completion_of(const TransferPtr& transfer, const std::string& peer);

}  // namespace usbnet::agent
