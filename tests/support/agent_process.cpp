#include "agent_process.h"

#include <stdlib.h>

#include <fstream>
#include <regex>
#include <stdexcept>

namespace usbnet::test {

std::string Programs::agent() { return USBNET_AGENT_BIN; }
std::string Programs::cli() { return USBNET_CLI_BIN; }
std::string Programs::shim() { return USBNET_SHIM_LIB; }
std::string Programs::preload() { return USBNET_PRELOAD_BEFORE_SHIM USBNET_SHIM_LIB; }
std::string Programs::example(const std::string& name) {
  return std::string(USBNET_EXAMPLES_DIR) + "/" + name;
}
std::string Programs::test_program(const std::string& name) {
  return std::string(USBNET_TEST_PROGRAMS_DIR) + "/" + name;
}

AgentProcess::OwnDir::OwnDir() {
  std::string pattern = (std::filesystem::temp_directory_path() / "usbnet-agent.XXXXXX").string();
  if (!::mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed");
  path = pattern;
}

AgentProcess::OwnDir::~OwnDir() {
  std::error_code ec;
  std::filesystem::remove_all(path, ec);
}

AgentProcess::AgentProcess(std::vector<std::string> args, const std::string& listen) {
  std::vector<std::string> argv{Programs::agent(), "--listen",    listen,
                                "--no-usb",        "--log-level", "debug"};
  argv.insert(argv.end(), args.begin(), args.end());
  state_dir_ = own_state_.path / "state";
  for (std::size_t i = 0; i + 1 < args.size(); ++i) {
    if (args[i] == "--state-dir") state_dir_ = args[i + 1];
  }
  if (state_dir_.parent_path() == own_state_.path) {
    argv.insert(argv.end(), {"--state-dir", state_dir_.string()});
  }
  process_ = std::make_unique<Process>(argv);
  if (!process_->wait_for_output("listening on", std::chrono::seconds(10))) {
    throw std::runtime_error("the agent did not start: " + process_->err());
  }
  std::smatch m;
  const std::string err = process_->err();
  if (!std::regex_search(err, m, std::regex(R"(\(port (\d+)\))"))) {
    throw std::runtime_error("no port in the agent's output: " + err);
  }
  port_ = static_cast<std::uint16_t>(std::stoi(m[1]));
}

std::string AgentProcess::key_line() const {
  std::ifstream in(state_dir_ / "agent_key.pub");
  std::string line;
  std::getline(in, line);
  if (line.empty()) throw std::runtime_error("no agent_key.pub in " + state_dir_.string());
  return line;
}

void AgentProcess::authorize(const std::string& client_key_line) const {
  std::ofstream out(state_dir_ / "authorized_clients", std::ios::app);
  out << client_key_line << "\n";
  if (!out) throw std::runtime_error("cannot write authorized_clients");
}

}  // namespace usbnet::test
