// Pairing codes and proofs: codes have one canonical form, proofs bind both keys and the code.
#include <catch2/catch.hpp>
#include <fstream>
#include <set>

#include "security/ed25519_key.h"
#include "security/pairing.h"
#include "support/temp_dir.h"

using namespace usbnet::security;
using usbnet::test::TempDir;

TEST_CASE("pairing codes: random, 16 characters in groups, typed loosely") {
  std::set<std::string> codes;
  for (int i = 0; i < 50; ++i) codes.insert(generate_pairing_code());
  CHECK(codes.size() == 50);
  const std::string code = *codes.begin();
  CHECK(code.size() == 19);
  CHECK(code[4] == '-');
  CHECK(normalize_pairing_code(code) == code);
  CHECK(normalize_pairing_code("7k2q m9px-rt4w 8hzc") == "7K2Q-M9PX-RT4W-8HZC");
  CHECK(normalize_pairing_code("OIL0-0000-0000-0000") == "0110-0000-0000-0000");
  CHECK_FALSE(normalize_pairing_code("7K2Q-M9PX-RT4W"));        // too short
  CHECK_FALSE(normalize_pairing_code("7K2Q-M9PX-RT4W-8HZCX"));  // too long
  CHECK_FALSE(normalize_pairing_code("7K2Q-M9PX-RT4W-8HZU"));   // U is not in the alphabet
  CHECK_FALSE(normalize_pairing_code(""));
}

TEST_CASE("pairing proofs bind the code and both keys, in their roles") {
  auto client = KeyPair::generate();
  auto agent = KeyPair::generate();
  auto other = KeyPair::generate();
  REQUIRE((client && agent && other));
  const PublicKey c = client->public_key(), a = agent->public_key(), m = other->public_key();
  const std::string code = "7K2Q-M9PX-RT4W-8HZC";
  const PairingProof proof = client_pairing_proof(code, c, a);
  CHECK(proofs_equal(proof, client_pairing_proof(code, c, a)));
  CHECK_FALSE(proofs_equal(proof, client_pairing_proof("7K2Q-M9PX-RT4W-8HZD", c, a)));
  CHECK_FALSE(proofs_equal(proof, client_pairing_proof(code, c, m)));  // a man in the middle
  CHECK_FALSE(proofs_equal(proof, client_pairing_proof(code, a, c)));
  CHECK_FALSE(proofs_equal(proof, agent_pairing_proof(code, c, a)));  // the other role
}

TEST_CASE("the pairing code file") {
  TempDir dir;
  const auto path = dir / "state/pairing_code";
  CHECK_FALSE(*read_pairing_code(path));
  REQUIRE_FALSE(write_pairing_code(path, {"7K2Q-M9PX-RT4W-8HZC", 1700000000}));
  auto read = read_pairing_code(path);
  REQUIRE(read);
  REQUIRE(*read);
  CHECK((*read)->code == "7K2Q-M9PX-RT4W-8HZC");
  CHECK((*read)->expires_at == 1700000000);
  remove_pairing_code(path);
  CHECK_FALSE(*read_pairing_code(path));
  std::ofstream(path) << "code nonsense\n";
  auto broken = read_pairing_code(path);
  REQUIRE_FALSE(broken);
  CHECK_THAT(broken.error(), Catch::Contains("is not a pairing code file"));
}
