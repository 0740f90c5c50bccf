#include "process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace usbnet::test {

namespace {

std::string read_file(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string temp_path(const char* what) {
  char pattern[] = "/tmp/usbnet-test-XXXXXX";
  const int fd = ::mkstemp(pattern);
  if (fd < 0) throw std::runtime_error("mkstemp failed");
  ::close(fd);
  return std::string(pattern) + "." + what;
}

}  // namespace

Process::Process(std::vector<std::string> argv, std::map<std::string, std::string> env)
    : out_path_(temp_path("out")), err_path_(temp_path("err")) {
  pid_ = ::fork();
  if (pid_ < 0) throw std::runtime_error("fork failed");
  if (pid_ == 0) {
    ::setpgid(0, 0);
    const int out = ::open(out_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const int err = ::open(err_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(out, STDOUT_FILENO);
    ::dup2(err, STDERR_FILENO);
    const int null = ::open("/dev/null", O_RDONLY);
    ::dup2(null, STDIN_FILENO);
    for (const auto& [name, value] : env) {
      if (value == kUnset) {
        ::unsetenv(name.c_str());
      } else {
        ::setenv(name.c_str(), value.c_str(), 1);
      }
    }
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    ::execvp(args[0], args.data());
    ::_exit(127);
  }
}

Process::~Process() {
  if (running()) {
    kill(SIGKILL);
    wait(std::chrono::seconds(5));
  }
  // USBNET_TEST_LOG_DIR keeps what every child process wrote, for debugging a failure.
  if (const char* dir = std::getenv("USBNET_TEST_LOG_DIR")) {
    const std::string base = std::string(dir) + "/" + std::to_string(pid_);
    std::ofstream(base + ".out") << out();
    std::ofstream(base + ".err") << err();
  }
  ::unlink(out_path_.c_str());
  ::unlink(err_path_.c_str());
}

bool Process::running() {
  if (status_) return false;
  int status = 0;
  const pid_t r = ::waitpid(pid_, &status, WNOHANG);
  if (r == pid_) {
    status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return false;
  }
  return r == 0;
}

std::optional<int> Process::wait(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (running()) {
    if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return status_;
}

void Process::kill(int signal) {
  if (!status_) ::kill(-pid_, signal);  // the whole group: the child and what it started
}

std::string Process::out() const { return read_file(out_path_); }
std::string Process::err() const { return read_file(err_path_); }

bool Process::wait_for_output(const std::string& text, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (out().find(text) != std::string::npos || err().find(text) != std::string::npos) {
      return true;
    }
    if (!running() || std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

RunResult run(std::vector<std::string> argv, std::map<std::string, std::string> env,
              std::chrono::milliseconds timeout) {
  Process p(std::move(argv), std::move(env));
  RunResult result;
  if (auto status = p.wait(timeout)) {
    result.status = *status;
  } else {
    p.kill(SIGKILL);
    p.wait(std::chrono::seconds(5));
  }
  result.out = p.out();
  result.err = p.err();
  return result;
}

std::size_t rss_kib(pid_t pid) {
  const std::string status = read_file("/proc/" + std::to_string(pid) + "/status");
  const auto at = status.find("VmRSS:");
  if (at == std::string::npos) return 0;
  return std::strtoull(status.c_str() + at + 6, nullptr, 10);
}

}  // namespace usbnet::test
