#include "agent_process.h"

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

AgentProcess::AgentProcess(std::vector<std::string> args, const std::string& listen) {
  std::vector<std::string> argv{Programs::agent(), "--listen",    listen,
                                "--no-usb",        "--log-level", "debug"};
  argv.insert(argv.end(), args.begin(), args.end());
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

}  // namespace usbnet::test
