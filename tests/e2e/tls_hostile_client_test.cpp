// Clients of a TLS agent that should get nothing: a key it does not know, a key it knew and no
// longer lets in, and bytes that are not what TLS or usbnet expect, during and right after the
// handshake. Each must end with one clear line in the agent's log and the connection closed,
// at once, and the agent must go on serving a good client.
//
// The refusal of a key must give away nothing, not even through time: the agent refuses an
// unknown key and a revoked one at the same point of the protocol (in the TLS handshake, before
// any application byte), and the client receives the same thing from both: records of the same
// types and lengths, the same alert, the same end. (Timing itself is not measured: tests do
// not assert on wall-clock time; what is asserted is that nothing the client can observe about
// the refusal depends on whether its key was ever known.)
#include <netinet/in.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>

#include <catch2/catch.hpp>
#include <fstream>
#include <regex>
#include <thread>

#include "security/key_store.h"
#include "security/tls_context.h"
#include "support/agent_process.h"
#include "support/temp_dir.h"
#include "support/text.h"
#include "usbnet/wire.h"

using namespace usbnet;
using namespace usbnet::test;
using namespace std::chrono_literals;

namespace {

std::string join(const std::vector<std::string>& items, const std::string& separator) {
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : separator) + item;
  return out;
}

int connect_to(std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(port);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
  // An agent that stops answering fails the test instead of hanging it.
  timeval timeout{10, 0};
  ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
  return fd;
}

// Everything the peer sends until it closes (or 10 s of silence).
std::string read_to_end(int fd) {
  std::string out;
  char buffer[4096];
  for (;;) {
    const ssize_t n = ::recv(fd, buffer, sizeof buffer, 0);
    if (n <= 0) return n == 0 ? out : out + "<no end: " + std::to_string(errno) + ">";
    out.append(buffer, static_cast<std::size_t>(n));
  }
}

// A client user's directory with its key, as `usbnet` keeps it.
struct ClientKey {
  ClientKey() {
    auto loaded = security::load_or_create_key(dir.path() / "client_key", "hostile-test");
    REQUIRE(loaded);
    key.emplace(loaded->key);
  }
  std::string line() const { return security::KeyLine{key->public_key(), "tester"}.to_string(); }
  std::string fingerprint() const { return key->public_key().fingerprint(); }
  std::map<std::string, std::string> env() const {
    return {{"USBNET_CONFIG_DIR", dir.path().string()}, {"USBNET_INSECURE", kUnset}};
  }
  void pin(const AgentProcess& agent) const {
    std::ofstream(dir.path() / "known_agents", std::ios::app)
        << agent.endpoint() << " " << agent.key_line() << "\n";
  }
  TempDir dir;
  std::optional<security::KeyPair> key;
};

// A TLS client made as usbnet's clients make theirs (security::TlsContext, the client's key,
// the agent's key pinned), on a blocking socket, that records what the agent sends: the type
// and length of every record, the inner type of the encrypted ones, the handshake messages
// and the alerts.
class TlsProbe {
 public:
  TlsProbe(const AgentProcess& agent, const security::KeyPair& key,
           const security::PublicKey& agent_key)
      : fd_(connect_to(agent.port())) {
    auto context = security::TlsContext::create(security::TlsRole::Client, key);
    REQUIRE(context);
    session_.emplace(*context, [agent_key](const security::PeerCertificate& peer) {
      if (peer.key && *peer.key == agent_key) {
        return security::Verdict::accept(security::PeerIdentity{
            security::PeerIdentity::Trust::PinnedAgent, peer.key, peer.fingerprint, {}});
      }
      return security::Verdict::refuse("not the agent's key");
    });
    SSL* ssl = session_->ssl();
    REQUIRE(ssl);
    SSL_set_msg_callback(ssl, &TlsProbe::on_message);
    SSL_set_msg_callback_arg(ssl, this);
    REQUIRE(SSL_set_fd(ssl, fd_) == 1);
  }
  ~TlsProbe() { ::close(fd_); }
  TlsProbe(const TlsProbe&) = delete;
  TlsProbe& operator=(const TlsProbe&) = delete;

  // The client's side of the handshake (in TLS 1.3 done before the agent judged its key).
  bool handshake() { return SSL_do_handshake(session_->ssl()) == 1; }
  bool write(const std::string& bytes) {
    std::size_t n = 0;
    return SSL_write_ex(session_->ssl(), bytes.data(), bytes.size(), &n) == 1;
  }
  // Application bytes until the connection ends; `end` says how it ended.
  std::string read_to_end(std::string& end) {
    std::string out;
    char buffer[4096];
    for (;;) {
      std::size_t n = 0;
      if (SSL_read_ex(session_->ssl(), buffer, sizeof buffer, &n) == 1) {
        out.append(buffer, n);
        continue;
      }
      const int error = SSL_get_error(session_->ssl(), 0);
      if (error == SSL_ERROR_SYSCALL && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        end = kTimedOut;
      } else {
        end = error == SSL_ERROR_ZERO_RETURN ? std::string("close_notify")
                                             : "failed: " + session_->failure_reason();
      }
      return out;
    }
  }
  static constexpr const char* kTimedOut = "timed out (the agent left the connection open)";
  // What the agent sent, in order.
  const std::vector<std::string>& received() const { return received_; }

 private:
  static void on_message(int write_p, int, int content_type, const void* data, std::size_t length,
                         SSL*, void* self) {
    if (write_p) return;
    auto* probe = static_cast<TlsProbe*>(self);
    const auto* bytes = static_cast<const std::uint8_t*>(data);
    std::string what;
    if (content_type == SSL3_RT_HEADER && length >= 5) {
      what = "record type " + std::to_string(bytes[0]) + " length " +
             std::to_string(bytes[3] << 8 | bytes[4]);
    } else if (content_type == SSL3_RT_INNER_CONTENT_TYPE && length >= 1) {
      what = "inner type " + std::to_string(bytes[0]);
    } else if (content_type == SSL3_RT_HANDSHAKE && length >= 1) {
      what = "handshake " + std::to_string(bytes[0]) + " length " + std::to_string(length);
    } else if (content_type == SSL3_RT_ALERT && length >= 2) {
      what = "alert " + std::to_string(bytes[0]) + " " + std::to_string(bytes[1]);
    } else {
      what = "content " + std::to_string(content_type) + " length " + std::to_string(length);
    }
    probe->received_.push_back(what);
  }

  int fd_;
  std::optional<security::TlsSession> session_;
  std::vector<std::string> received_;
};

security::PublicKey agent_key_of(const AgentProcess& agent) {
  auto line = security::parse_key_line(agent.key_line());
  REQUIRE(line);
  return line->key;
}

// The lines the agent logged since `before` (its whole log then).
std::vector<std::string> new_lines(AgentProcess& agent, const std::string& before) {
  const std::string now = agent.process().err();
  std::vector<std::string> lines;
  std::size_t at = before.size();
  while (at < now.size()) {
    const std::size_t end = now.find('\n', at);
    lines.push_back(now.substr(at, end - at));
    if (end == std::string::npos) break;
    at = end + 1;
  }
  return lines;
}

// Lines at info level or above: what an administrator reads (debug lines are the trace).
std::vector<std::string> clear_lines(const std::vector<std::string>& lines) {
  std::vector<std::string> out;
  for (const auto& line : lines) {
    if (line.find(": debug: ") == std::string::npos) {
      out.push_back(line);
    }
  }
  return out;
}

// Waits until the agent logs a clear line with `what` after `before` (its whole log then).
bool wait_for_new_line(AgentProcess& agent, const std::string& before, const std::string& what) {
  for (int i = 0; i < 200; ++i) {
    for (const auto& line : clear_lines(new_lines(agent, before))) {
      if (line.find(what) != std::string::npos) return true;
    }
    std::this_thread::sleep_for(50ms);
  }
  return false;
}

// A good client lists the devices over TLS: the agent is alive and serving.
void check_serves(AgentProcess& agent, const ClientKey& good) {
  const RunResult r = run(
      {Programs::cli(), "list", "--agent", agent.endpoint(), "--timeout", "3000"}, good.env(), 20s);
  INFO(r.out << r.err);
  CHECK(r.status == 0);
  CHECK(r.out.find("ID 1209:0001") != std::string::npos);
}

std::string frame(const wire::Message& message) {
  const wire::Bytes bytes = wire::encode(message);
  return std::string(bytes.begin(), bytes.end());
}

// The first frame of `bytes`, decoded.
std::optional<wire::Message> first_frame(const std::string& bytes) {
  if (bytes.size() < wire::kFrameLengthSize) return std::nullopt;
  const auto* p = reinterpret_cast<const std::uint8_t*>(bytes.data());
  const std::size_t length = p[0] | p[1] << 8 | p[2] << 16 | std::size_t(p[3]) << 24;
  if (bytes.size() < wire::kFrameLengthSize + length) return std::nullopt;
  auto decoded = wire::decode(wire::ByteView(p + wire::kFrameLengthSize, length));
  if (!decoded) return std::nullopt;
  return *decoded;
}

}  // namespace

TEST_CASE("an unknown key and a revoked key are refused alike: same protocol point, same bytes") {
  AgentProcess agent({"--simulate", "loopback"});
  const security::PublicKey agent_key = agent_key_of(agent);
  ClientKey unknown, revoked, good;
  agent.authorize(good.line());
  good.pin(agent);

  // The revoked key was let in once: authorized, then its line removed.
  agent.authorize(revoked.line());
  {
    TlsProbe probe(agent, *revoked.key, agent_key);
    REQUIRE(probe.handshake());
    REQUIRE(probe.write(frame(
        wire::Hello{1, wire::kProtocolVersion, 0, 0, wire::AuthMethod::None, {}, "revoked-test"})));
    REQUIRE(agent.process().wait_for_output("client connected (revoked-test)", 10s));
  }
  REQUIRE(agent.process().wait_for_output("releasing what the client held", 10s));
  std::ofstream(agent.state_dir() / "authorized_clients", std::ios::trunc) << good.line() << "\n";

  struct Seen {
    bool handshake = false;
    std::vector<std::string> records;
    std::string application_bytes, end;
  };
  const auto refused = [&](const ClientKey& client) {
    TlsProbe probe(agent, *client.key, agent_key);
    Seen seen;
    seen.handshake = probe.handshake();
    // The HELLO the client would send: the agent must not read it, nor answer it.
    if (seen.handshake) {
      probe.write(frame(wire::Hello{
          1, wire::kProtocolVersion, 0, 0, wire::AuthMethod::None, {}, "refused-test"}));
    }
    seen.application_bytes = probe.read_to_end(seen.end);
    seen.records = probe.received();
    return seen;
  };
  const std::string log_before = agent.process().err();
  const Seen a = refused(unknown);
  const Seen b = refused(revoked);

  INFO("unknown: " << join(a.records, "; ") << " / " << a.end);
  INFO("revoked: " << join(b.records, "; ") << " / " << b.end);
  // Refused in the handshake: nothing of the application, a TLS alert, then the end.
  CHECK(a.application_bytes.empty());
  CHECK(a.end.find("the agent refused this client's key") != std::string::npos);
  CHECK(std::find(a.records.begin(), a.records.end(), "inner type 23") == a.records.end());
  CHECK(std::count_if(a.records.begin(), a.records.end(),
                      [](const std::string& r) { return r.starts_with("alert 2 "); }) == 1);
  // The same for both, record for record.
  CHECK(a.handshake == b.handshake);
  CHECK(a.records == b.records);
  CHECK(a.application_bytes == b.application_bytes);
  CHECK(a.end == b.end);

  // The agent says the same of both, once each, and never got to a HELLO.
  REQUIRE(wait_for_new_line(agent, log_before, revoked.fingerprint() + " is not in"));
  const auto lines = clear_lines(new_lines(agent, log_before));
  INFO(join(lines, "\n"));
  REQUIRE(lines.size() == 2);
  const std::string refusal = "before its HELLO (the handshake failed: client key ";
  CHECK(lines[0].find(refusal + unknown.fingerprint() + " is not in") != std::string::npos);
  CHECK(lines[1].find(refusal + revoked.fingerprint() + " is not in") != std::string::npos);
  CHECK(agent.process().err().find("refused-test") == std::string::npos);
  check_serves(agent, good);
}

TEST_CASE(
    "malformed bytes during and right after the TLS handshake: one line, closed, agent alive") {
  AgentProcess agent({"--simulate", "loopback"});
  const security::PublicKey agent_key = agent_key_of(agent);
  ClientKey good, stranger;
  agent.authorize(good.line());
  good.pin(agent);

  // Runs one hostile client, then checks the agent's log (at info level and above: these
  // lines and no other) and that it still serves. One line says what happened; a pairing
  // refusal has the audit line of the disconnection after it.
  const auto expect_lines = [&](const std::string& what, const std::function<void()>& client,
                                const std::vector<std::string>& expected) {
    INFO(what);
    const std::string before = agent.process().err();
    client();
    const bool logged = wait_for_new_line(agent, before, expected.back());
    const auto lines = clear_lines(new_lines(agent, before));
    INFO(join(lines, "\n"));
    REQUIRE(logged);
    REQUIRE(lines.size() == expected.size());
    for (std::size_t i = 0; i < lines.size(); ++i) {
      CHECK(lines[i].find(expected[i]) != std::string::npos);
    }
    check_serves(agent, good);
  };

  expect_lines(
      "a ClientHello record of garbage",
      [&] {
        const int fd = connect_to(agent.port());
        std::string record = "\x16\x03\x01";
        record += std::string("\x00\x40", 2) + std::string(64, '\xab');
        REQUIRE(::send(fd, record.data(), record.size(), MSG_NOSIGNAL) ==
                static_cast<ssize_t>(record.size()));
        const std::string answer = read_to_end(fd);
        CHECK(answer.find("<no end") == std::string::npos);  // closed, not left hanging
        CHECK(answer.size() <= 7);                           // at most a TLS alert, in the clear
        ::close(fd);
      },
      {"client disconnected before its HELLO (the handshake failed: TLS failed: unexpected "
       "message)"});

  expect_lines("a truncated record, then the end",
               [&] {
                 const int fd = connect_to(agent.port());
                 // A ClientHello's record header announcing 512 bytes, and only 100 of them.
                 std::string record =
                     std::string("\x16\x03\x01\x02\x00", 5) + std::string(100, '\x01');
                 REQUIRE(::send(fd, record.data(), record.size(), MSG_NOSIGNAL) ==
                         static_cast<ssize_t>(record.size()));
                 ::shutdown(fd, SHUT_WR);
                 const std::string answer = read_to_end(fd);
                 CHECK(answer.find("<no end") == std::string::npos);
                 ::close(fd);
               },
               {"client disconnected before its HELLO (the handshake failed: the peer closed the "
                "connection in the middle of the TLS handshake (a truncated record))"});

  expect_lines(
      "a valid handshake, then a garbage HELLO",
      [&] {
        TlsProbe probe(agent, *good.key, agent_key);
        REQUIRE(probe.handshake());
        // A frame whose header is no usbnet header (wrong magic).
        REQUIRE(probe.write(std::string("\x10\x00\x00\x00", 4) + "GARBAGE-HELLO!!!"));
        std::string end;
        probe.read_to_end(end);
        CHECK(end != TlsProbe::kTimedOut);
      },
      {"closing the connection after a protocol error: bad magic (the message does not start "
       "with the magic"});

  // A pairing code is waiting, so the stranger's key is let in to pair, and nothing else.
  const RunResult code =
      run({Programs::agent(), "pair", "--state-dir", agent.state_dir().string(), "--valid", "600"});
  REQUIRE(code.status == 0);
  for (const std::size_t length : {31, 33}) {
    // Past the hold-off that the previous wrong proof started (1 s after the first).
    if (length == 33) std::this_thread::sleep_for(1500ms);
    expect_lines(
        "a pairing HELLO whose proof has " + std::to_string(length) + " bytes",
        [&] {
          TlsProbe probe(agent, *stranger.key, agent_key);
          REQUIRE(probe.handshake());
          REQUIRE(
              probe.write(frame(wire::Hello{1, wire::kProtocolVersion, 0, 0, wire::AuthMethod::Pair,
                                            wire::Bytes(length, 0x5a), "usbnet pair"})));
          std::string end;
          const std::string answer = probe.read_to_end(end);
          const auto error = first_frame(answer);
          REQUIRE(error);
          REQUIRE(std::holds_alternative<wire::Error>(*error));
          CHECK(std::get<wire::Error>(*error).code == wire::error_code::kAccess);
          CHECK(std::get<wire::Error>(*error).text.find("wrong pairing code") != std::string::npos);
          CHECK(end != TlsProbe::kTimedOut);
        },
        {"pairing refused for key " + stranger.fingerprint() + ": wrong pairing code",
         "client disconnected before its HELLO (pairing refused)"});
  }
  // Nothing was authorized by them.
  std::ifstream in(agent.state_dir() / "authorized_clients");
  const std::string authorized((std::istreambuf_iterator<char>(in)), {});
  CHECK(authorized.find(stranger.key->public_key().base64()) == std::string::npos);
  CHECK(count(authorized, "\n") == 1);
}
