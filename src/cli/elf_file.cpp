#include "cli/elf_file.h"

#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <memory>

namespace usbnet::cli {

namespace {

// Past these the file is not a program anyone runs; they bound the work on a hostile file.
constexpr std::size_t kMaxProgramHeaders = 4096;
constexpr std::size_t kMaxDynamicEntries = 65536;
constexpr std::size_t kMaxSymbols = 4 * 1024 * 1024;

struct FdCloser {
  int fd;
  ~FdCloser() {
    if (fd >= 0) ::close(fd);
  }
};
struct ElfEnd {
  void operator()(Elf* e) const { elf_end(e); }
};

Unexpected<std::string> bad(const std::string& what) {
  return Unexpected<std::string>{"not a valid ELF file (" + what + ")"};
}

// The loader's view of an address: the file offset of `vaddr` in a PT_LOAD segment, with
// `size` bytes available there.
std::optional<std::uint64_t> file_offset(const std::vector<GElf_Phdr>& loads, std::uint64_t vaddr,
                                         std::uint64_t size) {
  for (const GElf_Phdr& p : loads) {
    if (vaddr < p.p_vaddr || vaddr - p.p_vaddr >= p.p_filesz) continue;
    const std::uint64_t within = vaddr - p.p_vaddr;
    if (size > p.p_filesz - within) return std::nullopt;
    return p.p_offset + within;
  }
  return std::nullopt;
}

std::optional<std::string> string_at(const char* table, std::size_t table_size,
                                     std::uint64_t offset) {
  if (offset >= table_size) return std::nullopt;
  const void* end = std::memchr(table + offset, '\0', table_size - offset);
  if (!end) return std::nullopt;
  return std::string(table + offset);
}

// Reads PT_DYNAMIC and the string table it names, as the dynamic loader does (section headers
// may be missing or lie).
std::optional<std::string> read_dynamic(Elf* elf, const GElf_Phdr& dynamic,
                                        const std::vector<GElf_Phdr>& loads, ElfFacts& facts) {
  Elf_Data* data = elf_getdata_rawchunk(elf, static_cast<std::int64_t>(dynamic.p_offset),
                                        dynamic.p_filesz, ELF_T_DYN);
  if (!data || !data->d_buf) return "its dynamic segment lies outside the file";
  const std::size_t entry_size = gelf_fsize(elf, ELF_T_DYN, 1, EV_CURRENT);
  if (entry_size == 0) return "unknown dynamic entry size";
  const std::size_t count = std::min(data->d_size / entry_size, kMaxDynamicEntries);
  std::uint64_t strtab = 0, strsz = 0;
  bool have_strtab = false;
  std::vector<std::uint64_t> needed, rpath, runpath;
  for (std::size_t i = 0; i < count; ++i) {
    GElf_Dyn d;
    if (!gelf_getdyn(data, static_cast<int>(i), &d)) return "a dynamic entry cannot be read";
    if (d.d_tag == DT_NULL) break;
    switch (d.d_tag) {
      case DT_STRTAB:
        strtab = d.d_un.d_ptr;
        have_strtab = true;
        break;
      case DT_STRSZ:
        strsz = d.d_un.d_val;
        break;
      case DT_NEEDED:
        needed.push_back(d.d_un.d_val);
        break;
      case DT_RPATH:
        rpath.push_back(d.d_un.d_val);
        break;
      case DT_RUNPATH:
        runpath.push_back(d.d_un.d_val);
        break;
      default:
        break;
    }
  }
  if (needed.empty() && rpath.empty() && runpath.empty()) return std::nullopt;
  if (!have_strtab || strsz == 0) return "its dynamic section has no string table";
  const auto offset = file_offset(loads, strtab, strsz);
  if (!offset) return "its dynamic string table lies outside the file";
  Elf_Data* strings =
      elf_getdata_rawchunk(elf, static_cast<std::int64_t>(*offset), strsz, ELF_T_BYTE);
  if (!strings || !strings->d_buf) return "its dynamic string table lies outside the file";
  const char* table = static_cast<const char*>(strings->d_buf);
  for (std::uint64_t at : needed) {
    auto name = string_at(table, strings->d_size, at);
    if (!name) return "a DT_NEEDED name lies outside the string table";
    facts.needed.push_back(*name);
  }
  for (auto [offsets, out] :
       {std::pair{&rpath, &facts.rpath}, std::pair{&runpath, &facts.runpath}}) {
    for (std::uint64_t at : *offsets) {
      auto path = string_at(table, strings->d_size, at);
      if (!path) return "a DT_RPATH or DT_RUNPATH lies outside the string table";
      *out = *out ? **out + ":" + *path : *path;
    }
  }
  return std::nullopt;
}

// Defined functions with the prefix, from every symbol table section (.dynsym, .symtab).
void read_symbols(Elf* elf, const std::string& prefix, ElfFacts& facts) {
  std::size_t symbols_read = 0;
  for (Elf_Scn* section = elf_nextscn(elf, nullptr); section; section = elf_nextscn(elf, section)) {
    GElf_Shdr header;
    if (!gelf_getshdr(section, &header)) continue;
    if (header.sh_type != SHT_SYMTAB && header.sh_type != SHT_DYNSYM) continue;
    Elf_Data* data = elf_getdata(section, nullptr);
    if (!data || header.sh_entsize == 0) continue;
    const std::size_t count = header.sh_size / header.sh_entsize;
    for (std::size_t i = 0; i < count && symbols_read < kMaxSymbols; ++i, ++symbols_read) {
      GElf_Sym symbol;
      if (!gelf_getsym(data, static_cast<int>(i), &symbol)) break;
      if (symbol.st_shndx == SHN_UNDEF || GELF_ST_TYPE(symbol.st_info) != STT_FUNC) continue;
      const char* name = elf_strptr(elf, header.sh_link, symbol.st_name);
      if (name && std::strncmp(name, prefix.c_str(), prefix.size()) == 0) {
        facts.defined_functions.insert(name);
      }
    }
  }
}

}  // namespace

bool looks_like_elf(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  FdCloser closer{fd};
  char magic[4];
  return ::pread(fd, magic, 4, 0) == 4 && std::memcmp(magic, ELFMAG, SELFMAG) == 0;
}

Expected<ElfFacts, std::string> read_elf(const std::string& path,
                                         const std::string& function_prefix) {
  if (elf_version(EV_CURRENT) == EV_NONE) return Unexpected<std::string>{"libelf is too old"};
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    return Unexpected<std::string>{std::string("cannot read it: ") + std::strerror(errno)};
  FdCloser closer{fd};
  std::unique_ptr<Elf, ElfEnd> elf(elf_begin(fd, ELF_C_READ, nullptr));
  if (!elf || elf_kind(elf.get()) != ELF_K_ELF) return bad(elf_errmsg(-1));
  GElf_Ehdr header;
  if (!gelf_getehdr(elf.get(), &header)) return bad(elf_errmsg(-1));
  ElfFacts facts;
  facts.elf_class = header.e_ident[EI_CLASS];
  facts.machine = header.e_machine;
  std::size_t count = 0;
  if (elf_getphdrnum(elf.get(), &count) != 0) return bad(elf_errmsg(-1));
  if (count > kMaxProgramHeaders) return bad("too many program headers");
  struct stat st;
  if (::fstat(fd, &st) != 0) return bad("cannot stat it");
  const std::uint64_t file_size = static_cast<std::uint64_t>(st.st_size);
  // libelf gives no program headers at all when the table is cut short: check what the header
  // declares.
  const std::uint64_t declared = header.e_phnum == PN_XNUM ? count : header.e_phnum;
  const std::uint64_t table_size = declared * header.e_phentsize;
  if (declared != count || header.e_phoff > file_size || table_size > file_size - header.e_phoff) {
    return bad("its program headers lie outside the file");
  }
  std::vector<GElf_Phdr> loads;
  std::optional<GElf_Phdr> dynamic;
  for (std::size_t i = 0; i < count; ++i) {
    GElf_Phdr p;
    if (!gelf_getphdr(elf.get(), static_cast<int>(i), &p)) return bad(elf_errmsg(-1));
    if (p.p_type == PT_LOAD) loads.push_back(p);
    if (p.p_type == PT_DYNAMIC) dynamic = p;
    if (p.p_type == PT_INTERP) {
      Elf_Data* data = elf_getdata_rawchunk(elf.get(), static_cast<std::int64_t>(p.p_offset),
                                            p.p_filesz, ELF_T_BYTE);
      if (!data || !data->d_buf || data->d_size == 0) return bad("PT_INTERP lies outside the file");
      const char* text = static_cast<const char*>(data->d_buf);
      if (!std::memchr(text, '\0', data->d_size)) return bad("PT_INTERP is not terminated");
      facts.interpreter = std::string(text);
    }
  }
  if (dynamic) {
    facts.has_dynamic = true;
    if (auto error = read_dynamic(elf.get(), *dynamic, loads, facts)) return bad(*error);
  }
  read_symbols(elf.get(), function_prefix, facts);
  return facts;
}

std::string machine_name(unsigned elf_class, unsigned machine) {
  switch (machine) {
    case EM_X86_64:
      return elf_class == ELFCLASS32 ? "x32" : "x86-64";
    case EM_386:
      return "i386";
    case EM_AARCH64:
      return "AArch64";
    case EM_ARM:
      return "32-bit ARM";
    case EM_RISCV:
      return elf_class == ELFCLASS32 ? "RISC-V 32" : "RISC-V 64";
    case EM_PPC64:
      return "ppc64";
    case EM_S390:
      return "s390x";
    default:
      return (elf_class == ELFCLASS32 ? "32-bit machine " : "64-bit machine ") +
             std::to_string(machine);
  }
}

}  // namespace usbnet::cli
