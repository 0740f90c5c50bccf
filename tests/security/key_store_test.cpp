// Key files on disk: created once (0600, in a 0700 directory), found again, and refused with a
// clear message when truncated, foreign, or readable by others.
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <thread>

#include "security/key_store.h"
#include "support/temp_dir.h"

using namespace usbnet::security;
using usbnet::test::TempDir;

namespace {

unsigned mode_of(const std::filesystem::path& path) {
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  return st.st_mode & 0777;
}

void write_text(const std::filesystem::path& path, const std::string& text, unsigned mode = 0600) {
  std::ofstream(path) << text;
  ::chmod(path.c_str(), mode);
}

}  // namespace

TEST_CASE("a key is created on first use, private, and the same key comes back") {
  TempDir dir;
  const auto path = dir / "state/agent_key";
  auto first = load_or_create_key(path, "usbnet-agent@test");
  REQUIRE(first);
  CHECK(first->created);
  CHECK(mode_of(path) == 0600);
  CHECK(mode_of(dir / "state") == 0700);
  auto again = load_or_create_key(path, "ignored");
  REQUIRE(again);
  CHECK_FALSE(again->created);
  CHECK(again->key.public_key() == first->key.public_key());
  std::ifstream pub(path.string() + ".pub");
  std::string line;
  std::getline(pub, line);
  auto parsed = parse_key_line(line);
  REQUIRE(parsed);
  CHECK(parsed->key == first->key.public_key());
  CHECK(parsed->comment == "usbnet-agent@test");
}

TEST_CASE("processes that create the key at once end up with one key") {
  TempDir dir;
  const auto path = dir / "client_key";
  std::vector<PublicKey> keys(4);
  std::vector<std::thread> threads;
  for (auto& k : keys) {
    threads.emplace_back([&] {
      auto loaded = load_or_create_key(path, "x");
      if (loaded) k = loaded->key.public_key();
    });
  }
  for (auto& t : threads) t.join();
  for (const auto& k : keys) CHECK(k == keys.front());
  CHECK(keys.front() != PublicKey{});
}

TEST_CASE("broken key files are refused with the file's name and what is wrong") {
  TempDir dir;
  auto key = KeyPair::generate();
  REQUIRE(key);
  const std::string pem = key->private_pem();

  SECTION("truncated") {
    write_text(dir / "k", pem.substr(0, pem.size() / 2));
    auto loaded = load_key(dir / "k");
    REQUIRE_FALSE(loaded);
    CHECK_THAT(loaded.error(),
               Catch::Contains((dir / "k").string()) && Catch::Contains("not a usbnet key file"));
  }
  SECTION("garbage") {
    write_text(dir / "k", "this is not a key\n\x01\x02\x03");
    auto loaded = load_key(dir / "k");
    REQUIRE_FALSE(loaded);
    CHECK_THAT(loaded.error(), Catch::Contains("not a usbnet key file"));
  }
  SECTION("empty") {
    write_text(dir / "k", "");
    CHECK_FALSE(load_key(dir / "k"));
  }
  SECTION("another key type") {
    EVP_PKEY* rsa = EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
    REQUIRE(rsa);
    std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), &BIO_free);
    PEM_write_bio_PrivateKey(bio.get(), rsa, nullptr, nullptr, 0, nullptr, nullptr);
    EVP_PKEY_free(rsa);
    char* data = nullptr;
    const long n = BIO_get_mem_data(bio.get(), &data);
    write_text(dir / "k", std::string(data, static_cast<std::size_t>(n)));
    auto loaded = load_key(dir / "k");
    REQUIRE_FALSE(loaded);
    CHECK_THAT(loaded.error(), Catch::Contains("not an Ed25519 key"));
  }
  SECTION("readable by others") {
    write_text(dir / "k", pem, 0644);
    auto loaded = load_key(dir / "k");
    REQUIRE_FALSE(loaded);
    CHECK_THAT(loaded.error(), Catch::Contains("0644") && Catch::Contains("chmod 600"));
  }
  SECTION("too large") {
    write_text(dir / "k", std::string(100000, 'A'));
    auto loaded = load_key(dir / "k");
    REQUIRE_FALSE(loaded);
    CHECK_THAT(loaded.error(), Catch::Contains("larger than"));
  }
  SECTION("missing, for load_key") {
    auto loaded = load_key(dir / "absent");
    REQUIRE_FALSE(loaded);
    CHECK_THAT(loaded.error(), Catch::Contains("does not exist"));
  }
}
