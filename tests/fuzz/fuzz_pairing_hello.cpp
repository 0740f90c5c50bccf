// libFuzzer target for pairing as the agent sees it: a client that the TLS handshake let in
// with an unknown key while a code waits sends a HELLO with auth_method 2 (Pair) and a proof;
// the session decodes the frame and hands the proof to the pairing window
// (agent/pairing_window.h), which reads the code file in the state directory. Any bytes there
// must give a refusal with a sentence, or, for the one right proof only, the pairing.
//
// The first input byte says what the rest is (pairing_fuzz_input.h): a message body, a bare
// proof, or the code file's text followed by a 32-byte proof. Properties checked on every input:
//  - the window pairs exactly when the proof is HMAC(code, client key, agent key) of the code
//    in the file (read_pairing_code says which, if any), and then answers with the agent's
//    proof and adds the client's key, with nothing else, to authorized_clients;
//  - otherwise it refuses with ACCESS and a sentence, and authorized_clients stays absent;
//  - an expired code is refused and removed.
#include <stdlib.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <string>

#include "agent/pairing_window.h"
#include "pairing_fuzz_input.h"
#include "security/pairing.h"
#include "security/trust_files.h"
#include "usbnet/wire.h"

using namespace usbnet;
using namespace usbnet::fuzz_pairing;
namespace fs = std::filesystem;

namespace {

// The state directory, removed when the run ends (libFuzzer exits through exit()); its path in
// a plain array, which no destructor clears before the exit handler runs.
char state_dir[4096];

const security::AgentFiles& files() {
  static const security::AgentFiles made = [] {
    const std::string pattern = (fs::temp_directory_path() / "usbnet-fuzz-pairing.XXXXXX").string();
    if (pattern.size() >= sizeof state_dir) std::abort();
    std::copy(pattern.begin(), pattern.end(), state_dir);
    if (!::mkdtemp(state_dir)) std::abort();
    std::atexit([] {
      std::error_code ec;
      fs::remove_all(state_dir, ec);
    });
    return security::AgentFiles{state_dir};
  }();
  return made;
}

void write_code_file(const std::string& text) {
  std::ofstream(files().pairing_code(), std::ios::binary | std::ios::trunc) << text;
}

void check(bool property) {
  if (!property) std::abort();
}

// One attempt against a fresh window (a wrong proof holds the next attempts off), with the
// code file as it is now; checks the outcome against what read_pairing_code finds in it.
void attempt(const wire::Bytes& proof) {
  std::error_code ec;
  fs::remove(files().authorized_clients(), ec);
  const auto code = security::read_pairing_code(files().pairing_code());
  agent::PairingWindow window(files(), kAgentKey);
  const auto before = static_cast<std::int64_t>(std::time(nullptr));
  auto outcome = window.attempt(kClientKey, proof, "paired-fuzz");
  const auto after = static_cast<std::int64_t>(std::time(nullptr));
  bool right = false, expired = false;
  if (code && *code) {
    const security::PairingProof expected =
        security::client_pairing_proof((*code)->code, kClientKey, kAgentKey);
    right =
        proof.size() == expected.size() && std::equal(proof.begin(), proof.end(), expected.begin());
    // The window's clock read a second between these two: a code that expires then is either.
    if ((*code)->expires_at > before && (*code)->expires_at <= after) return;
    expired = (*code)->expires_at <= before;
  }
  if (const auto* paired = std::get_if<agent::PairingWindow::Paired>(&outcome)) {
    check(right && !expired);
    check(paired->agent_proof ==
          security::agent_pairing_proof((*code)->code, kAgentKey, kClientKey));
    auto clients = security::AuthorizedClients::load(files().authorized_clients());
    check(clients && clients->keys().size() == 1 && clients->keys()[0].key.key == kClientKey);
    check(!fs::exists(files().pairing_code()));  // single-use
  } else {
    const auto& refused = std::get<agent::PairingWindow::Refused>(outcome);
    check(!right || expired || !code);
    check(refused.code == wire::error_code::kAccess && !refused.text.empty());
    check(!fs::exists(files().authorized_clients()));
    if (expired) check(!fs::exists(files().pairing_code()));
  }
}

void write_waiting_code() {
  write_code_file("code " + kCode + "\nexpires " + std::to_string(kExpiresAt) + "\n");
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const wire::ByteView rest(data + 1, size - 1);
  switch (data[0] % kInputKinds) {
    case kHelloBody: {
      // As the session does: only a HELLO with auth_method Pair reaches the window.
      auto message = wire::decode(rest);
      if (!message) break;
      auto* hello = std::get_if<wire::Hello>(&*message);
      if (!hello || hello->auth_method != wire::AuthMethod::Pair) break;
      write_waiting_code();
      attempt(hello->auth);
      break;
    }
    case kRawProof:
      write_waiting_code();
      attempt(wire::Bytes(rest.begin(), rest.end()));
      break;
    case kCodeFile: {
      const std::size_t proof_size = std::min<std::size_t>(32, rest.size());
      const std::size_t text_size = rest.size() - proof_size;
      write_code_file(std::string(reinterpret_cast<const char*>(rest.data()), text_size));
      attempt(wire::Bytes(rest.begin() + static_cast<std::ptrdiff_t>(text_size), rest.end()));
      break;
    }
  }
  return 0;
}
