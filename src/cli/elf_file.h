// What `usbnet run` reads from an ELF file to know whether preloading libusbnet.so can work for
// it: class and machine, the interpreter (PT_INTERP), the dynamic section the loader reads
// (DT_NEEDED, DT_RPATH, DT_RUNPATH) and the functions it defines. Read with elfutils' libelf,
// every offset and size checked against the file; a malformed file is an error, never a crash.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "usbnet/expected.h"

namespace usbnet::cli {

struct ElfFacts {
  unsigned elf_class = 0;  // ELFCLASS32 or ELFCLASS64
  unsigned machine = 0;    // EM_X86_64, EM_AARCH64, ...
  std::optional<std::string> interpreter;
  bool has_dynamic = false;
  std::vector<std::string> needed;
  std::optional<std::string> rpath;
  std::optional<std::string> runpath;
  // Defined functions whose names start with the prefix given to read_elf, from the dynamic
  // symbol table and, where the file was not stripped, the full one.
  std::set<std::string> defined_functions;
};

// Whether the file starts with the ELF magic (reads 4 bytes).
bool looks_like_elf(const std::string& path);

// Reads `path`; the error is one line saying what is wrong with the file.
Expected<ElfFacts, std::string> read_elf(const std::string& path,
                                         const std::string& function_prefix);

// "x86-64", "i386", "AArch64", ... for messages.
std::string machine_name(unsigned elf_class, unsigned machine);

}  // namespace usbnet::cli
