#include "cli/preload_check.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <sstream>
#include <vector>

#include "cli/elf_file.h"

namespace usbnet::cli {

namespace {

constexpr int kMaxInterpreterDepth = 4;  // as the kernel (BINPRM's recursion limit)

std::vector<std::string> split(const std::string& text, char separator) {
  std::vector<std::string> parts;
  std::string part;
  std::istringstream in(text);
  while (std::getline(in, part, separator)) parts.push_back(part);
  return parts;
}

bool executable_file(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && ::access(path.c_str(), X_OK) == 0;
}

bool same_file(const std::string& a, const std::string& b) {
  struct stat sa, sb;
  return ::stat(a.c_str(), &sa) == 0 && ::stat(b.c_str(), &sb) == 0 && sa.st_dev == sb.st_dev &&
         sa.st_ino == sb.st_ino;
}

// The kernel's reading of a "#!" line: the interpreter and at most one argument.
struct Shebang {
  std::string interpreter;
  std::string argument;
};

std::optional<Shebang> read_shebang(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  char buffer[256];  // BINPRM_BUF_SIZE: the kernel reads no more of the line
  const ssize_t n = ::read(fd, buffer, sizeof buffer);
  ::close(fd);
  if (n < 2 || buffer[0] != '#' || buffer[1] != '!') return std::nullopt;
  std::string line(buffer + 2, static_cast<std::size_t>(n) - 2);
  line = line.substr(0, line.find('\n'));
  const auto blank = [](char c) { return c == ' ' || c == '\t'; };
  auto begin = std::find_if_not(line.begin(), line.end(), blank);
  auto end = std::find_if(begin, line.end(), blank);
  Shebang s{std::string(begin, end), {}};
  auto arg_begin = std::find_if_not(end, line.end(), blank);
  std::string argument(arg_begin, line.end());
  while (!argument.empty() && blank(argument.back())) argument.pop_back();
  s.argument = argument;
  return s;
}

// What `#!/usr/bin/env ARGUMENT` runs: the first word that is neither an option nor a
// VAR=value (with -S, the words of the argument), found in PATH.
std::optional<std::string> env_program(const std::string& argument) {
  for (const std::string& word : split(argument, ' ')) {
    if (word.empty() || word[0] == '-' || word.find('=') != std::string::npos) continue;
    return word;
  }
  return std::nullopt;
}

bool is_libusb_name(const std::string& name) {
  const auto slash = name.rfind('/');
  return name.compare(slash == std::string::npos ? 0 : slash + 1, 13, "libusb-1.0.so") == 0;
}

// $ORIGIN and the other tokens of a DT_RPATH/DT_RUNPATH entry; nullopt for one it cannot know.
std::optional<std::string> expand(std::string dir, const std::string& origin) {
  const std::pair<const char*, std::string> tokens[] = {
      {"${ORIGIN}", origin}, {"$ORIGIN", origin}, {"${LIB}", ""}, {"$LIB", ""}};
  for (const auto& [token, value] : tokens) {
    for (auto at = dir.find(token); at != std::string::npos; at = dir.find(token)) {
      if (value.empty()) return std::nullopt;
      dir.replace(at, std::strlen(token), value);
    }
  }
  if (dir.find('$') != std::string::npos) return std::nullopt;
  return dir;
}

// The file the loader would take for DT_NEEDED `name` before its default directories: the
// program's DT_RPATH (without DT_RUNPATH), LD_LIBRARY_PATH, then DT_RUNPATH.
std::optional<std::string> private_library(const std::string& name, const ElfFacts& facts,
                                           const std::string& program, const SearchPaths& search) {
  if (name.find('/') != std::string::npos) return name;
  const std::string origin = std::filesystem::path(program).parent_path().string();
  std::vector<std::string> dirs;
  auto add = [&](const std::optional<std::string>& list) {
    if (!list) return;
    for (const std::string& dir : split(*list, ':')) {
      if (auto expanded = expand(dir, origin)) dirs.push_back(*expanded);
    }
  };
  if (!facts.runpath) add(facts.rpath);
  add(search.library_path.empty() ? std::nullopt : std::optional(search.library_path));
  add(facts.runpath);
  for (const std::string& dir : dirs) {
    const std::string candidate = (dir.empty() ? "." : dir) + "/" + name;
    struct stat st;
    if (::stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode)) return candidate;
  }
  return std::nullopt;
}

std::string joined(const std::set<std::string>& names, std::size_t at_most) {
  std::string out;
  std::size_t n = 0;
  for (const std::string& name : names) {
    if (n++ == at_most) return out + ", ...";
    out += (out.empty() ? "" : ", ") + name;
  }
  return out;
}

std::optional<std::string> privilege_obstacle(const std::string& program) {
  struct stat st;
  if (::stat(program.c_str(), &st) != 0) return std::nullopt;
  struct statvfs fs;
  const bool nosuid = ::statvfs(program.c_str(), &fs) == 0 && (fs.f_flag & ST_NOSUID);
  // The loader's secure mode, in which it ignores LD_PRELOAD's paths, starts when the exec
  // changes the effective user or group, or grants capabilities.
  if (!nosuid && (st.st_mode & S_ISUID) && st.st_uid != ::getuid()) {
    return " is set-uid: the dynamic loader ignores LD_PRELOAD for it (run usbnet run inside "
           "it instead, for example: sudo usbnet run PROGRAM)";
  }
  if (!nosuid && (st.st_mode & S_ISGID) && (st.st_mode & S_IXGRP) && st.st_gid != ::getgid()) {
    return " is set-gid: the dynamic loader ignores LD_PRELOAD for it";
  }
  if (!nosuid && ::geteuid() != 0 &&
      ::getxattr(program.c_str(), "security.capability", nullptr, 0) > 0) {
    return " has file capabilities: the dynamic loader ignores LD_PRELOAD for it";
  }
  return std::nullopt;
}

std::optional<std::string> elf_obstacle(const std::string& program, const ShimFacts& shim,
                                        const SearchPaths& search) {
  auto facts = read_elf(program, "libusb_");
  if (!facts) return ": " + facts.error();
  if (facts->elf_class != shim.elf_class || facts->machine != shim.machine) {
    return " is a " + machine_name(facts->elf_class, facts->machine) + " program and " +
           std::filesystem::path(shim.path).filename().string() + " is " +
           machine_name(shim.elf_class, shim.machine) + ": one cannot be loaded into the other";
  }
  if (!facts->interpreter) {
    return " is statically linked: no dynamic loader runs in it to preload libusbnet.so";
  }
  std::set<std::string> own;
  std::set_intersection(facts->defined_functions.begin(), facts->defined_functions.end(),
                        shim.exports.begin(), shim.exports.end(), std::inserter(own, own.begin()));
  if (!own.empty()) {
    return " carries its own libusb (it defines " + joined(own, 3) +
           "): its calls never reach libusbnet.so";
  }
  for (const std::string& needed : facts->needed) {
    if (!is_libusb_name(needed)) continue;
    const auto library = private_library(needed, *facts, program, search);
    if (!library || same_file(*library, search.system_libusb)) continue;
    // A copy of libusb-1.0 of its own: the shim still comes first for every call, and sends
    // local devices to that copy, unless the copy has functions the shim does not.
    auto copy = read_elf(*library, "libusb_");
    if (!copy) return " needs " + *library + ", which is " + copy.error();
    std::set<std::string> unknown;
    std::set_difference(copy->defined_functions.begin(), copy->defined_functions.end(),
                        shim.exports.begin(), shim.exports.end(),
                        std::inserter(unknown, unknown.begin()));
    if (!unknown.empty()) {
      return " carries its own libusb (" + *library + ") with functions libusbnet.so does not " +
             "have (" + joined(unknown, 3) + ")";
    }
  }
  return std::nullopt;
}

std::optional<std::string> obstacle(const std::string& program, const ShimFacts& shim,
                                    const SearchPaths& search, int depth) {
  if (auto why = privilege_obstacle(program)) return why;
  if (looks_like_elf(program)) return elf_obstacle(program, shim, search);
  auto shebang = read_shebang(program);
  if (!shebang) return std::nullopt;  // run by /bin/sh (execvp), or by binfmt_misc: unknown
  if (depth >= kMaxInterpreterDepth) return ": too many levels of #! interpreters";
  std::string interpreter = shebang->interpreter;
  if (std::filesystem::path(interpreter).filename() == "env") {
    if (auto name = env_program(shebang->argument)) {
      auto found = find_in_path(*name, search.path);
      if (!found) return ": its #! line runs " + *name + ", which is not in PATH";
      interpreter = *found;
    }
  }
  if (!executable_file(interpreter)) {
    return ": its #! interpreter " + interpreter + " is not an executable file";
  }
  if (auto why = obstacle(interpreter, shim, search, depth + 1)) {
    return " is run by " + interpreter + ", which" + *why;
  }
  return std::nullopt;
}

}  // namespace

std::optional<std::string> find_in_path(const std::string& name, const std::string& path) {
  if (name.empty()) return std::nullopt;
  if (name.find('/') != std::string::npos) {
    return executable_file(name) ? std::optional(name) : std::nullopt;
  }
  for (const std::string& dir : split(path.empty() ? "/usr/local/bin:/bin:/usr/bin" : path, ':')) {
    const std::string candidate = (dir.empty() ? "." : dir) + "/" + name;
    if (executable_file(candidate)) return candidate;
  }
  return std::nullopt;
}

std::optional<std::string> preload_obstacle(const std::string& program, const ShimFacts& shim,
                                            const SearchPaths& search) {
  return obstacle(program, shim, search, 0);
}

}  // namespace usbnet::cli
