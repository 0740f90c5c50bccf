// libFuzzer target for the key-line and trust-file parsers: authorized_clients and known_agents
// are edited by hand and copied around, so any text must give a key list or a clear error, never
// a crash. Property: every key accepted prints as a line that parses back to the same key.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "security/trust_files.h"

using namespace usbnet::security;

namespace {

void round_trip(const KeyLine& key) {
  auto again = parse_key_line(key.to_string());
  if (!again || again->key != key.key || again->comment != key.comment) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  if (auto line = parse_key_line(text)) round_trip(*line);
  if (auto clients = AuthorizedClients::parse(text, "fuzz")) {
    for (const TrustedKey& k : clients->keys()) round_trip(k.key);
  } else if (clients.error().empty()) {
    std::abort();  // an error says what is wrong
  }
  if (auto agents = KnownAgents::parse(text, "fuzz")) {
    for (const TrustedKey& k : agents->agents()) {
      if (k.agent.empty()) std::abort();
      round_trip(k.key);
    }
  }
  return 0;
}
