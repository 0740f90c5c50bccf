// Key lines and fingerprints: what people copy between machines, so every malformed form gets a
// sentence that says what is wrong.
#include <catch2/catch.hpp>

#include "security/ed25519_key.h"
#include "security/key_line.h"

using namespace usbnet::security;

TEST_CASE("a key line round-trips with its comment") {
  auto key = KeyPair::generate();
  REQUIRE(key);
  const KeyLine line{key->public_key(), "alice@laptop"};
  const std::string text = line.to_string();
  CHECK(text.starts_with("usbnet-ed25519 "));
  CHECK(text.ends_with(" alice@laptop"));
  auto parsed = parse_key_line("  " + text + " \r\n");
  REQUIRE(parsed);
  CHECK(parsed->key == key->public_key());
  CHECK(parsed->comment == "alice@laptop");
  // A comment may have spaces; no comment is fine.
  auto spaced = parse_key_line("usbnet-ed25519 " + key->public_key().base64() + " Alice's laptop");
  REQUIRE(spaced);
  CHECK(spaced->comment == "Alice's laptop");
  auto bare = parse_key_line("usbnet-ed25519 " + key->public_key().base64());
  REQUIRE(bare);
  CHECK(bare->comment.empty());
}

TEST_CASE("fingerprints are SHA256 in unpadded base64, as ssh shows them") {
  PublicKey zero;  // 32 zero bytes: SHA-256 66687aad...
  CHECK(zero.fingerprint() == "SHA256:Zmh6rfhivXdsj8GLjp+OIAiXFIVu4jOzkCpZHQ1fKSU");
  auto a = KeyPair::generate();
  auto b = KeyPair::generate();
  REQUIRE(a);
  REQUIRE(b);
  CHECK(a->public_key().fingerprint() != b->public_key().fingerprint());
  CHECK(a->public_key().fingerprint().size() == 7 + 43);
}

TEST_CASE("malformed key lines are refused with a sentence") {
  auto key = KeyPair::generate();
  REQUIRE(key);
  const std::string b64 = key->public_key().base64();
  struct Case {
    std::string line;
    std::string says;
  };
  const Case cases[] = {
      {"", "the key line is empty"},
      {"   \t ", "the key line is empty"},
      {"ssh-ed25519 " + b64 + " bob", "'ssh-ed25519' is not a usbnet key type"},
      {"usbnet-ed25519", "the key is missing after 'usbnet-ed25519'"},
      {"usbnet-ed25519 " + b64.substr(0, 21), "its length is not a multiple of four"},
      {"usbnet-ed25519 " + b64.substr(0, 20), "the key has 15 bytes"},
      {"usbnet-ed25519 " + b64.substr(0, 40), "the key has 30 bytes, an Ed25519 public key has 32"},
      {"usbnet-ed25519 " + b64 + "AAAA", "'=' before its end"},
      {"usbnet-ed25519 " + b64.substr(0, 43) + "AAAAA", "the key has 36 bytes"},
      {"usbnet-ed25519 " + std::string(44, '!'), "'!' is not a base64 character"},
      {"usbnet-ed25519 AA=A" + b64.substr(4), "'=' before its end"},
      {"usbnet-ed25519 " + b64 + " bad\x01comment", "control character"},
      {"garbage", "'garbage' is not a usbnet key type"},
  };
  for (const Case& c : cases) {
    INFO("line: " << c.line);
    auto parsed = parse_key_line(c.line);
    REQUIRE_FALSE(parsed);
    CHECK_THAT(parsed.error(), Catch::Contains(c.says));
  }
}

TEST_CASE("base64 decoding is strict") {
  CHECK(*base64_decode("") == "");
  CHECK(*base64_decode("YQ==") == "a");
  CHECK(*base64_decode("YWI=") == "ab");
  CHECK(*base64_decode("YWJj") == "abc");
  CHECK_FALSE(base64_decode("YQ="));
  CHECK_FALSE(base64_decode("Y==="));
  CHECK_FALSE(base64_decode("YQ==YQ=="));
  CHECK_FALSE(base64_decode("YW J"));
}
