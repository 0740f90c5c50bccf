// Seeds the pairing fuzzer's corpus (DIR): HELLOs with the right proof, a wrong one and one of
// the wrong length, a bare right proof, and code files (waiting, expired, garbage) with proofs.
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "pairing_fuzz_input.h"
#include "security/pairing.h"
#include "usbnet/wire.h"

using namespace usbnet;
using namespace usbnet::fuzz_pairing;

namespace {

template <typename Proof>
std::string as_text(const Proof& proof) {
  return std::string(proof.begin(), proof.end());
}

std::string hello(const wire::Bytes& proof) {
  const wire::Bytes frame = wire::encode(wire::Message{wire::Hello{
      1, wire::kProtocolVersion, 0, 5000, wire::AuthMethod::Pair, proof, "usbnet pair"}});
  // The body, without the frame's length prefix, as the session's decoder hands it over.
  return std::string(frame.begin() + wire::kFrameLengthSize, frame.end());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: write_pairing_corpus DIR\n");
    return 2;
  }
  const std::string dir = argv[1];
  const auto right = security::client_pairing_proof(kCode, kClientKey, kAgentKey);
  const wire::Bytes right_bytes(right.begin(), right.end());
  wire::Bytes wrong = right_bytes;
  wrong[0] ^= 1;
  const wire::Bytes short_one(right.begin(), right.end() - 1);
  const std::string waiting = "code " + kCode + "\nexpires " + std::to_string(kExpiresAt) + "\n";
  const std::vector<std::string> seeds = {
      char(kHelloBody) + hello(right_bytes),
      char(kHelloBody) + hello(wrong),
      char(kHelloBody) + hello(short_one),
      char(kHelloBody) + hello({}),
      char(kRawProof) + as_text(right),
      char(kCodeFile) + waiting + as_text(right),
      char(kCodeFile) + "code " + kCode + "\nexpires 1\n" + as_text(right),
      char(kCodeFile) + "code abcd efgh jkmn pqrs\nexpires 4102444800" + as_text(right),
      char(kCodeFile) + "code XXXX\nexpires -\n" + as_text(wrong),
  };
  int n = 0;
  for (const std::string& seed : seeds) {
    std::ofstream(dir + "/seed" + std::to_string(n++), std::ios::binary) << seed;
  }
  return 0;
}
