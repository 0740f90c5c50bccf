// Seeds the trust-file fuzzer's corpus (DIR) with well-formed key lines and files.
#include <cstdio>
#include <fstream>
#include <string>

#include "security/ed25519_key.h"

using namespace usbnet::security;

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: write_trust_corpus DIR\n");
    return 2;
  }
  const std::string dir = argv[1];
  auto a = KeyPair::generate();
  auto b = KeyPair::generate();
  if (!a || !b) return 1;
  const std::string line_a = KeyLine{a->public_key(), "alice@laptop"}.to_string();
  const std::string line_b = KeyLine{b->public_key(), ""}.to_string();
  const std::string seeds[] = {
      line_a,
      "# authorized clients\n\n" + line_a + "\n  " + line_b + "\r\n",
      "lab:3241 " + line_a + "\n[::1]:3241 " + line_b + "\n",
      "usbnet-ed25519 AAAA\n",
  };
  int n = 0;
  for (const std::string& seed : seeds) {
    std::ofstream(dir + "/seed" + std::to_string(n++)) << seed;
  }
  return 0;
}
