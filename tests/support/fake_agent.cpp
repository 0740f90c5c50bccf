#include "fake_agent.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <stdexcept>

namespace usbnet::test {

FakeAgent::FakeAgent() {
  listener_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof addr;
  if (listener_ < 0 || ::bind(listener_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(listener_, 4) != 0 ||
      ::getsockname(listener_, reinterpret_cast<sockaddr*>(&addr), &length) != 0) {
    if (listener_ >= 0) ::close(listener_);
    throw std::runtime_error("the fake agent cannot listen");
  }
  port_ = ntohs(addr.sin_port);
}

FakeAgent::~FakeAgent() { ::close(listener_); }

std::unique_ptr<WireClient> FakeAgent::accept(std::chrono::milliseconds timeout) {
  pollfd p{listener_, POLLIN, 0};
  if (::poll(&p, 1, static_cast<int>(timeout.count())) <= 0) return nullptr;
  const int fd = ::accept4(listener_, nullptr, nullptr, SOCK_CLOEXEC);
  if (fd < 0) return nullptr;
  return std::make_unique<WireClient>(WireClient::Adopt{fd});
}

bool answer_hello(WireClient& peer, std::uint32_t heartbeat_ms) {
  auto hello = peer.receive();
  if (!hello || !hello->as<wire::Hello>()) return false;
  peer.send(wire::Hello{hello->as<wire::Hello>()->id,
                        wire::kProtocolVersion,
                        wire::kCapIso | wire::kCapHotplug,
                        heartbeat_ms,
                        wire::AuthMethod::None,
                        {},
                        "fake agent"});
  return true;
}

}  // namespace usbnet::test
