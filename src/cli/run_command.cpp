#include "cli/run_command.h"

#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "cli/elf_file.h"
#include "cli/preload_check.h"
#include "common/device_filter.h"
#include "transport/endpoint.h"
#include "usbnet/protocol.h"

namespace usbnet::cli {

namespace {

namespace fs = std::filesystem;

int say(int status, const std::string& line) {
  std::fprintf(stderr, "usbnet run: %s\n", line.c_str());
  return status;
}

std::string env_or(const char* name, const std::string& fallback) {
  const char* value = std::getenv(name);
  return value ? value : fallback;
}

// Where libusbnet.so is: USBNET_SHIM, else beside an installed usbnet (the private library
// directory, relative to the binary directory), else the build tree's.
std::optional<std::string> find_shim(std::string& error) {
  if (const char* given = std::getenv("USBNET_SHIM")) {
    std::error_code ec;
    fs::path path = fs::absolute(given, ec);
    if (ec || !fs::is_regular_file(path, ec)) {
      error = std::string("USBNET_SHIM=") + given + " is not a file";
      return std::nullopt;
    }
    return path.lexically_normal().string();
  }
  std::error_code ec;
  const fs::path self = fs::read_symlink("/proc/self/exe", ec);
  if (ec) {
    error = "cannot find its own executable (/proc/self/exe): " + ec.message();
    return std::nullopt;
  }
  for (const char* relative : {USBNET_SHIM_FROM_BINDIR, USBNET_SHIM_FROM_BUILD_DIR}) {
    const fs::path candidate = (self.parent_path() / relative).lexically_normal();
    if (fs::is_regular_file(candidate, ec)) return candidate.string();
  }
  error = "cannot find libusbnet.so (looked in " +
          (self.parent_path() / USBNET_SHIM_FROM_BINDIR).lexically_normal().string() + " and " +
          (self.parent_path() / USBNET_SHIM_FROM_BUILD_DIR).lexically_normal().string() +
          "; USBNET_SHIM=PATH names it)";
  return std::nullopt;
}

std::optional<ShimFacts> read_shim(const std::string& path, std::string& error) {
  auto facts = read_elf(path, "libusb_");
  if (!facts) {
    error = path + ": " + facts.error();
    return std::nullopt;
  }
  if (facts->defined_functions.empty()) {
    error = path + " exports no libusb function: it is not libusbnet.so";
    return std::nullopt;
  }
  return ShimFacts{path, facts->elf_class, facts->machine, facts->defined_functions};
}

// The shim first, then what LD_PRELOAD already had. A sanitizer's runtime must stay ahead of
// everything (a libusbnet.so built with a sanitizer needs it loaded first).
std::string preload_with(const std::string& shim, const std::string& existing) {
  std::string runtimes, others;
  std::size_t start = 0;
  while (start <= existing.size()) {
    std::size_t end = existing.find_first_of(": ", start);
    if (end == std::string::npos) end = existing.size();
    const std::string entry = existing.substr(start, end - start);
    start = end + 1;
    if (entry.empty() || entry == shim) continue;
    const std::string name = fs::path(entry).filename().string();
    const bool sanitizer = name.rfind("libasan.so", 0) == 0 || name.rfind("libtsan.so", 0) == 0 ||
                           name.rfind("libubsan.so", 0) == 0;
    std::string& list = sanitizer ? runtimes : others;
    list += (list.empty() ? "" : ":") + entry;
  }
  std::string out = runtimes;
  out += (out.empty() ? "" : ":") + shim;
  if (!others.empty()) out += ":" + others;
  return out;
}

std::optional<std::string> check_agents(const std::string& text) {
  std::size_t start = 0;
  bool any = false;
  while (start <= text.size()) {
    std::size_t end = text.find(',', start);
    if (end == std::string::npos) end = text.size();
    const std::string entry = text.substr(start, end - start);
    start = end + 1;
    if (entry.empty()) continue;
    auto endpoint = transport::parse_endpoint(entry, wire::kDefaultPort);
    if (!endpoint) return endpoint.error();
    if (endpoint->host.empty()) return "'" + entry + "' names no host";
    any = true;
  }
  if (!any) return "names no agent";
  return std::nullopt;
}

}  // namespace

int run_program(const RunRequest& request) {
  if (request.command.empty()) return say(2, "no program to run (usbnet run --help)");
  if (request.agent) {
    if (auto error = check_agents(*request.agent)) return say(2, "--agent: " + *error);
  }
  if (request.devices) {
    if (auto filter = DeviceFilter::parse(*request.devices); !filter) {
      return say(2, "--devices: " + filter.error());
    }
  }
  std::string error;
  const auto shim_path = find_shim(error);
  if (!shim_path) return say(126, error);
  if (shim_path->find_first_of(": ") != std::string::npos) {
    return say(126, *shim_path + ": LD_PRELOAD cannot carry a path with a space or a colon");
  }
  const auto shim = read_shim(*shim_path, error);
  if (!shim) return say(126, error);

  const std::string& name = request.command.front();
  const std::string path_variable = env_or("PATH", "");
  const auto program = find_in_path(name, path_variable);
  if (!program) {
    return say(127, name + (name.find('/') != std::string::npos ? ": no such executable file"
                                                                : ": command not found in PATH"));
  }
  const SearchPaths search{path_variable, env_or("LD_LIBRARY_PATH", ""), USBNET_SYSTEM_LIBUSB};
  if (auto why = preload_obstacle(*program, *shim, search)) {
    return say(126, name + *why);
  }

  ::setenv("LD_PRELOAD", preload_with(shim->path, env_or("LD_PRELOAD", "")).c_str(), 1);
  if (request.agent) {
    ::setenv("USBNET_AGENT", request.agent->c_str(), 1);
  } else if (!std::getenv("USBNET_AGENT")) {
    ::setenv("USBNET_AGENT", ("127.0.0.1:" + std::to_string(wire::kDefaultPort)).c_str(), 1);
  }
  if (request.devices) ::setenv("USBNET_DEVICES", request.devices->c_str(), 1);

  std::vector<char*> argv;
  for (const std::string& arg : request.command) argv.push_back(const_cast<char*>(arg.c_str()));
  argv.push_back(nullptr);
  ::execv(program->c_str(), argv.data());
  const int e = errno;
  if (e == ENOEXEC) {  // no #! line: a shell script, as execvp() runs it
    std::vector<char*> sh{const_cast<char*>("/bin/sh"), const_cast<char*>(program->c_str())};
    sh.insert(sh.end(), argv.begin() + 1, argv.end());
    ::execv("/bin/sh", sh.data());
  }
  return say(e == ENOENT ? 127 : 126, name + ": " + std::strerror(e));
}

int split_run_command(int argc, char** argv, std::vector<std::string>& command) {
  int i = 1;
  while (i < argc && std::strcmp(argv[i], "run") != 0) ++i;
  for (++i; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (arg == "--") {
      command.assign(argv + i + 1, argv + argc);
      return i;
    }
    if (arg == "--agent" || arg == "--devices") {
      ++i;  // its value
    } else if (!arg.starts_with("-")) {
      break;  // PROGRAM: everything from here on is the program's
    }
  }
  return argc;
}

std::string run_help_footer() {
  return "Runs PROGRAM with libusbnet.so preloaded (prepended to LD_PRELOAD), USBNET_AGENT and\n"
         "USBNET_DEVICES set from the options (else kept from the environment; the agent\n"
         "defaults to 127.0.0.1:3241), and exits with PROGRAM's exit status. The other USBNET_*\n"
         "variables pass through. libusbnet.so is looked for in the installed private library\n"
         "directory, then in the build tree; USBNET_SHIM=PATH names it.\n"
         "\n"
         "Before running anything it says in one line, and exits with status 126, when\n"
         "preloading cannot work: a statically linked program, a set-uid or set-gid program (or\n"
         "one with file capabilities), a program of another architecture, or a program that\n"
         "carries its own libusb. A #! script is judged by its interpreter. Status 127: no such\n"
         "program; 2: bad options.\n"
         "\n"
         "Example: usbnet run --agent lab-pc:3241 --devices 0483:df11 dfu-util -l";
}

}  // namespace usbnet::cli
