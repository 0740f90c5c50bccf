// A usbnet-agent started for a test on a free loopback port.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <filesystem>

#include "process.h"

namespace usbnet::test {

// Paths of the programs under test (set by CMake).
struct Programs {
  static std::string agent();
  static std::string cli();
  static std::string shim();
  // The LD_PRELOAD value that loads the shim (after the sanitizer runtimes in such builds).
  static std::string preload();
  static std::string example(const std::string& name);
  static std::string test_program(const std::string& name);
};

class AgentProcess {
 public:
  // Starts the agent with `args` added (by default two simulated devices and no real USB),
  // listening on `listen` (by default a free loopback port), with a state directory of its own
  // (its key, authorized_clients) unless `args` names one.
  explicit AgentProcess(std::vector<std::string> args = {"--simulate", "loopback,mouse"},
                        const std::string& listen = "127.0.0.1:0");
  std::uint16_t port() const { return port_; }
  std::string endpoint() const { return "127.0.0.1:" + std::to_string(port_); }
  Process& process() { return *process_; }
  // Its state directory, and what is in it: the public key line, authorized_clients.
  const std::filesystem::path& state_dir() const { return state_dir_; }
  std::string key_line() const;  // agent_key.pub, without the newline
  void authorize(const std::string& client_key_line) const;

 private:
  // A directory of its own (removed with it), unless the arguments name a state directory.
  struct OwnDir {
    OwnDir();
    ~OwnDir();
    std::filesystem::path path;
  } own_state_;
  std::filesystem::path state_dir_;
  std::unique_ptr<Process> process_;
  std::uint16_t port_ = 0;
};

}  // namespace usbnet::test
