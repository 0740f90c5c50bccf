// `usbnet run [--agent HOST:PORT[,...]] [--devices VID:PID[,...]] [--] PROGRAM [ARGS...]`: runs
// PROGRAM with libusbnet.so preloaded, as torsocks and proxychains do for their libraries.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace usbnet::cli {

struct RunRequest {
  std::optional<std::string> agent;    // --agent; else USBNET_AGENT, else 127.0.0.1:3241
  std::optional<std::string> devices;  // --devices; else USBNET_DEVICES (unset: every device)
  std::vector<std::string> command;    // PROGRAM [ARGS...]
};

// Finds the shim, checks that preloading can work for the program, sets the environment and
// execs it: returns only on failure, with the exit status (2 bad usage, 126 cannot run through
// usbnet, 127 no such program), having printed one line.
int run_program(const RunRequest& request);

// When argv is `usbnet [...] run [OPTIONS] -- PROGRAM [ARGS...]`: moves PROGRAM [ARGS...] to
// `command` and returns the count of the arguments before "--" (the rest for the option
// parser); else returns argc. Only a "--" before the first word that is not an option counts.
int split_run_command(int argc, char** argv, std::vector<std::string>& command);

// The text `usbnet run --help` shows after the options.
std::string run_help_footer();

}  // namespace usbnet::cli
