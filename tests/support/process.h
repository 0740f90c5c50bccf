// Child processes for end-to-end tests: started with fork/exec, their output captured to files,
// every wait bounded, and killed (with their process group) when the test ends.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace usbnet::test {

// An environment value that removes the variable (an empty string sets it empty).
inline const std::string kUnset = "\x01unset";

class Process {
 public:
  // Starts `argv` with the current environment changed by `env` (see kUnset).
  Process(std::vector<std::string> argv, std::map<std::string, std::string> env = {});
  ~Process();  // kills it if still running
  Process(const Process&) = delete;
  Process& operator=(const Process&) = delete;

  pid_t pid() const { return pid_; }
  // Waits for it to exit; the exit status (or 128 + signal), or nullopt on timeout.
  std::optional<int> wait(std::chrono::milliseconds timeout);
  bool running();
  void kill(int signal);
  // Everything it wrote so far.
  std::string out() const;
  std::string err() const;
  // Waits until its stdout or stderr contains `text`; false on timeout or exit.
  bool wait_for_output(const std::string& text, std::chrono::milliseconds timeout);

 private:
  pid_t pid_ = -1;
  std::optional<int> status_;
  std::string out_path_;
  std::string err_path_;
};

// A process's resident memory (VmRSS of /proc/PID/status), in KiB; 0 if it is gone.
std::size_t rss_kib(pid_t pid);

// Runs a program to completion (bounded); its exit status, stdout and stderr.
struct RunResult {
  int status = -1;  // -1: timed out (and killed)
  std::string out;
  std::string err;
};
RunResult run(std::vector<std::string> argv, std::map<std::string, std::string> env = {},
              std::chrono::milliseconds timeout = std::chrono::seconds(60));

}  // namespace usbnet::test
