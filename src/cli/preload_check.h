// Whether preloading libusbnet.so can work for a program, decided before it runs: the dynamic
// loader preloads nothing into a statically linked program, ignores LD_PRELOAD's paths for a
// set-uid or set-gid program (or one with file capabilities), cannot load the shim into a
// program of another architecture, and a program that carries its own libusb (linked into it,
// or a copy with functions the shim does not have) never calls the shim for it. A #! script is
// judged by its interpreter (`#!/usr/bin/env NAME` by NAME found in PATH).
#pragma once

#include <optional>
#include <set>
#include <string>

namespace usbnet::cli {

struct ShimFacts {
  std::string path;
  unsigned elf_class = 0;
  unsigned machine = 0;
  std::set<std::string> exports;  // its libusb_* functions
};

struct SearchPaths {
  std::string path;           // PATH, for #!/usr/bin/env NAME
  std::string library_path;   // LD_LIBRARY_PATH the program will run with
  std::string system_libusb;  // the file the loader finds for libusb-1.0.so.0 by default
};

// The program as execvp() would find it in `path` (names with a '/' are taken as they are);
// nullopt if there is none.
std::optional<std::string> find_in_path(const std::string& name, const std::string& path);

// Why preloading cannot work for the program at `program` (a path), in one line without the
// program's name (" is statically linked: ..."), or nullopt when it can.
std::optional<std::string> preload_obstacle(const std::string& program, const ShimFacts& shim,
                                            const SearchPaths& search);

}  // namespace usbnet::cli
