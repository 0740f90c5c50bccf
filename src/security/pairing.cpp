#include "security/pairing.h"

#include <openssl/crypto.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <unistd.h>

#include <charconv>

#include <fmt/format.h>

#include "security/key_store.h"

namespace usbnet::security {

namespace {

constexpr std::string_view kAlphabet = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";  // Crockford's
constexpr std::size_t kCodeLength = 16;

PairingProof proof(std::string_view label, std::string_view code, const PublicKey& first,
                   const PublicKey& second) {
  std::string message(label);
  message.append(first.bytes.begin(), first.bytes.end());
  message.append(second.bytes.begin(), second.bytes.end());
  PairingProof out{};
  unsigned length = 0;
  HMAC(EVP_sha256(), code.data(), static_cast<int>(code.size()),
       reinterpret_cast<const unsigned char*>(message.data()), message.size(), out.data(), &length);
  return out;
}

}  // namespace

std::string generate_pairing_code() {
  std::array<unsigned char, kCodeLength> random{};
  if (RAND_bytes(random.data(), static_cast<int>(random.size())) != 1) return {};
  std::string code;
  for (std::size_t i = 0; i < kCodeLength; ++i) {
    if (i > 0 && i % 4 == 0) code += '-';
    code += kAlphabet[random[i] % kAlphabet.size()];  // 256 is a multiple of 32: uniform
  }
  return code;
}

std::optional<std::string> normalize_pairing_code(std::string_view typed) {
  std::string plain;
  for (char c : typed) {
    if (c == '-' || c == ' ') continue;
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
    if (c == 'O') c = '0';
    if (c == 'I' || c == 'L') c = '1';
    if (kAlphabet.find(c) == std::string_view::npos) return std::nullopt;
    plain += c;
  }
  if (plain.size() != kCodeLength) return std::nullopt;
  std::string code;
  for (std::size_t i = 0; i < plain.size(); ++i) {
    if (i > 0 && i % 4 == 0) code += '-';
    code += plain[i];
  }
  return code;
}

PairingProof client_pairing_proof(std::string_view code, const PublicKey& client,
                                  const PublicKey& agent) {
  return proof("usbnet pair client", code, client, agent);
}

PairingProof agent_pairing_proof(std::string_view code, const PublicKey& agent,
                                 const PublicKey& client) {
  return proof("usbnet pair agent", code, agent, client);
}

bool proofs_equal(const PairingProof& a, const PairingProof& b) {
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

std::optional<std::string> write_pairing_code(const std::filesystem::path& path,
                                              const PairingCode& code) {
  if (path.has_parent_path()) {
    if (auto error = make_private_dir(path.parent_path())) return error;
  }
  auto written = write_private_file(
      path, fmt::format("code {}\nexpires {}\n", code.code, code.expires_at), false);
  if (!written) return written.error();
  return std::nullopt;
}

Expected<std::optional<PairingCode>, std::string> read_pairing_code(
    const std::filesystem::path& path) {
  auto content = read_small_file(path, 4096);
  if (!content) return Unexpected{content.error()};
  if (!*content) return std::optional<PairingCode>{};
  PairingCode code;
  bool have_expiry = false;
  std::string_view rest = **content;
  while (!rest.empty()) {
    const std::size_t end = rest.find('\n');
    const std::string_view line = rest.substr(0, end);
    rest = end == std::string_view::npos ? std::string_view{} : rest.substr(end + 1);
    if (line.starts_with("code ")) {
      if (auto canonical = normalize_pairing_code(line.substr(5))) code.code = *canonical;
    } else if (line.starts_with("expires ")) {
      const std::string_view number = line.substr(8);
      const auto [p, ec] =
          std::from_chars(number.data(), number.data() + number.size(), code.expires_at);
      have_expiry = ec == std::errc() && p == number.data() + number.size();
    }
  }
  if (code.code.empty() || !have_expiry) {
    return Unexpected{fmt::format("{} is not a pairing code file", path.string())};
  }
  return std::optional<PairingCode>{code};
}

void remove_pairing_code(const std::filesystem::path& path) { ::unlink(path.c_str()); }

}  // namespace usbnet::security
