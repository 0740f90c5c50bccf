// The golden vectors: the encoder produces them byte for byte, the decoder reads them back, and
// docs/PROTOCOL.md shows exactly the same bytes.
#include <catch2/catch.hpp>
#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>

#include "hex.h"
#include "usbnet/wire.h"
#include "wire_vectors.h"

using namespace usbnet::wire;
using namespace usbnet::wire::test;

TEST_CASE("every message kind has a golden vector") {
  std::set<MessageType> covered;
  for (const GoldenVector& v : golden_vectors()) covered.insert(type_of(v.message));
  CHECK(covered.size() == std::variant_size_v<Message>);
}

TEST_CASE("the encoder produces the golden vectors") {
  for (const GoldenVector& v : golden_vectors()) {
    INFO("vector " << v.name);
    CHECK(to_hex(encode(v.message)) == v.hex);
  }
  CHECK(to_hex(heartbeat_frame()) == kHeartbeatHex);
}

TEST_CASE("the decoder reads the golden vectors back") {
  for (const GoldenVector& v : golden_vectors()) {
    INFO("vector " << v.name);
    const Bytes frame = from_hex(v.hex);
    REQUIRE(frame.size() > kFrameLengthSize);
    auto decoded = decode(ByteView(frame).subspan(kFrameLengthSize));
    REQUIRE(decoded.has_value());
    CHECK(*decoded == v.message);
  }
}

namespace {
// Reads every "<!-- vector: NAME -->" block of docs/PROTOCOL.md: the fenced block after the marker,
// each line's bytes before its '#' comment.
std::map<std::string, std::string> vectors_in_protocol_doc() {
  std::ifstream doc(USBNET_SOURCE_DIR "/docs/PROTOCOL.md");
  REQUIRE(doc.good());
  std::map<std::string, std::string> found;
  const std::regex marker(R"(^<!-- vector: ([a-z0-9_]+) -->\s*$)");
  std::string line;
  while (std::getline(doc, line)) {
    std::smatch m;
    if (!std::regex_match(line, m, marker)) continue;
    const std::string name = m[1];
    REQUIRE(std::getline(doc, line));
    REQUIRE(line.rfind("```", 0) == 0);
    std::string hex;
    while (std::getline(doc, line) && line.rfind("```", 0) != 0) {
      hex += line.substr(0, line.find('#'));
    }
    INFO("vector " << name);
    CHECK_FALSE(found.contains(name));
    found[name] = to_hex(from_hex(hex));
  }
  return found;
}
}  // namespace

TEST_CASE("docs/PROTOCOL.md shows the same vectors byte for byte") {
  auto documented = vectors_in_protocol_doc();
  std::map<std::string, std::string> tested;
  for (const GoldenVector& v : golden_vectors()) tested[v.name] = v.hex;
  tested["heartbeat"] = kHeartbeatHex;
  CHECK(documented == tested);
}
