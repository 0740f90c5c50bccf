// The protocol's golden vectors: a message and the exact bytes of its frame.
#pragma once

#include <string>
#include <vector>

#include "usbnet/messages.h"

namespace usbnet::wire::test {

struct GoldenVector {
  std::string name;  // as in docs/PROTOCOL.md ("<!-- vector: NAME -->")
  Message message;
  std::string hex;  // the whole frame, length prefix included, lowercase hex without spaces
};

const std::vector<GoldenVector>& golden_vectors();
extern const char* const kHeartbeatHex;

}  // namespace usbnet::wire::test
