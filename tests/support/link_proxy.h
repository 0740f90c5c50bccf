// An in-process TCP proxy between a client and the agent, for tests of a stalled or broken link:
// it forwards every connection made to its port to the target, and can stop forwarding (the
// sockets stay open, like a link whose packets are dropped), resume, or cut every connection.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>

namespace usbnet::test {

class LinkProxy {
 public:
  // Listens on a free loopback port and forwards to target_host:target_port (IPv4).
  explicit LinkProxy(std::uint16_t target_port, std::string target_host = "127.0.0.1");
  ~LinkProxy();  // closes everything and joins its thread
  LinkProxy(const LinkProxy&) = delete;
  LinkProxy& operator=(const LinkProxy&) = delete;

  std::uint16_t port() const { return port_; }
  std::string endpoint() const { return "127.0.0.1:" + std::to_string(port_); }

  // Each returns once the proxy's thread has applied it: after pause() no byte moves in either
  // direction (bytes already in the proxy stay there until resume()); new connections are
  // accepted but not forwarded while paused.
  void pause();
  void resume();
  // Closes both sides of every connection accepted so far (later ones are forwarded again).
  void cut();
  // Connections accepted so far, and those still open.
  int accepted();
  int open_connections();

 private:
  enum class Command { kNone, kPause, kResume, kCut, kStop };
  void run(int listener);
  void command(Command c);

  std::uint16_t port_ = 0;
  std::uint16_t target_port_;
  std::string target_host_;
  int wake_[2] = {-1, -1};  // self-pipe: a command is waiting

  std::mutex mutex_;
  std::condition_variable done_;
  Command pending_ = Command::kNone;
  std::uint64_t requested_ = 0;  // commands issued / applied, to wait for "applied"
  std::uint64_t applied_ = 0;
  int accepted_ = 0;
  int open_ = 0;

  std::thread thread_;
};

}  // namespace usbnet::test
