// Programs that load libusb at run time, under the same LD_PRELOAD as any other: a C program
// that dlopens it in every way, pyusb and python3-usb1 end to end, and programs that never use
// libusb (their dlopen calls, RUNPATH searches included, must work as without the shim, and
// nothing new is printed).
#include <catch2/catch.hpp>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <string>

#include <unistd.h>

#include "support/agent_process.h"
#include "support/shim_env.h"

using namespace usbnet::test;

namespace {

const std::string kPython = "/usr/bin/python3";  // Debian's, which has python3-usb and -usb1

std::string script(const std::string& name) {
  return std::string(USBNET_TEST_PYTHON_DIR) + "/" + name;
}

// What dlopen_libusb prints when a way worked through the shim.
const std::string kThroughShim =
    "functions from libusbnet.so, 2 remote devices, control round trip OK";

// A directory removed with its contents at the end of the test.
struct TempDir {
  std::filesystem::path path;
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "usbnet-dlopen-XXXXXX");
    if (!::mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed");
    path = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path, ignored);
  }
};

// The environment of a run without the shim: only what a sanitizer build preloads before it.
// (A sanitizer's own dlopen interceptor calls dlopen from its runtime, so under it a program's
// RUNPATH is not searched for its dlopen calls, shim or no shim.)
std::map<std::string, std::string> without_shim() {
  const std::string before = USBNET_PRELOAD_BEFORE_SHIM;
  return {{"LD_PRELOAD", before.empty() ? kUnset : before}};
}
const bool kSanitizerPreloaded = std::string(USBNET_PRELOAD_BEFORE_SHIM).size() > 0;

RunResult dlopen_libusb(const AgentProcess& agent, std::vector<std::string> args) {
  args.insert(args.begin(), Programs::test_program("dlopen_libusb"));
  return run(args, shim_env(agent));
}

}  // namespace

TEST_CASE("dlopen of libusb by its soname, RTLD_LOCAL, gives libusbnet's functions") {
  AgentProcess agent;
  const RunResult r = dlopen_libusb(agent, {"soname"});
  INFO(r.out << r.err);
  CHECK(r.status == 0);
  CHECK(r.out.find("soname: " + kThroughShim) != std::string::npos);
  CHECK(r.out.find("the real libusb-1.0 is loaded") != std::string::npos);  // for local devices
  CHECK(r.err.empty());
}

TEST_CASE("dlopen of libusb through another preloaded dlopen interposer placed before the shim") {
  // Its dlopen() reaches the shim's entry from outside the shim, for the program's requests
  // and the shim's own alike: the shim must still load the real libusb for itself.
  AgentProcess agent;
  auto env = shim_env(agent);
  // (A sanitizer's runtime stays first, as it must.)
  env["LD_PRELOAD"] = std::string(USBNET_PRELOAD_BEFORE_SHIM) + USBNET_TEST_DLOPEN_FORWARDER + ":" +
                      Programs::shim();
  const RunResult r = run({Programs::test_program("dlopen_libusb"), "soname"}, env);
  INFO(r.out << r.err);
  CHECK(r.status == 0);
  CHECK(r.out.find("soname: " + kThroughShim) != std::string::npos);
  CHECK(r.out.find("the real libusb-1.0 is loaded") != std::string::npos);
  CHECK(r.err.empty());
}

TEST_CASE("dlopen of libusb by its file's path, a symlink with another name, or another path") {
  AgentProcess agent;
  TempDir dir;
  const std::string system = USBNET_TEST_SYSTEM_LIBUSB;
  const std::filesystem::path renamed = dir.path / "some-plugin.so";
  std::filesystem::create_symlink(system, renamed);
  const std::filesystem::path elsewhere = dir.path / "elsewhere";
  std::filesystem::create_directory(elsewhere);
  std::filesystem::create_symlink(std::filesystem::canonical(system),
                                  elsewhere / "libusb-1.0.so.0");
  for (const std::string& path : {system, std::filesystem::canonical(system).string(),
                                  renamed.string(), (elsewhere / "libusb-1.0.so.0").string()}) {
    const RunResult r = dlopen_libusb(agent, {"path", path});
    INFO(path << "\n" << r.out << r.err);
    CHECK(r.status == 0);
    CHECK(r.out.find("path: " + kThroughShim) != std::string::npos);
    CHECK(r.err.empty());
  }
}

TEST_CASE("dlopen of libusb with RTLD_GLOBAL, then dlsym(RTLD_DEFAULT)") {
  AgentProcess agent;
  const RunResult r = dlopen_libusb(agent, {"global"});
  INFO(r.out << r.err);
  CHECK(r.status == 0);
  CHECK(r.out.find("global: " + kThroughShim) != std::string::npos);
  CHECK(r.err.empty());
}

TEST_CASE("dlopen of libusb twice, by soname and by path, dlclose of one, loaded again") {
  AgentProcess agent;
  const RunResult r = dlopen_libusb(agent, {"twice", USBNET_TEST_SYSTEM_LIBUSB});
  INFO(r.out << r.err);
  CHECK(r.status == 0);
  CHECK(r.out.find("twice, after one dlclose: " + kThroughShim) != std::string::npos);
  CHECK(r.out.find("twice, loaded again: " + kThroughShim) != std::string::npos);
  CHECK(r.err.empty());
}

TEST_CASE("dlopen of libusb from four threads at once") {
  AgentProcess agent;
  const RunResult r = dlopen_libusb(agent, {"threads"});
  INFO(r.out << r.err);
  CHECK(r.status == 0);
  for (int i = 0; i < 4; ++i) {
    CHECK(r.out.find("thread " + std::to_string(i) + ": 2 remote devices") != std::string::npos);
  }
  CHECK(r.err.empty());
}

TEST_CASE("dlsym(RTLD_DEFAULT) and dlsym(RTLD_NEXT) without a dlopen, and dlmopen(LM_ID_BASE)") {
  AgentProcess agent;
  for (const std::string way : {"default", "next", "dlmopen"}) {
    const RunResult r = dlopen_libusb(agent, {way});
    INFO(way << "\n" << r.out << r.err);
    CHECK(r.status == 0);
    CHECK(r.out.find(way + ": " + kThroughShim) != std::string::npos);
    CHECK(r.err.empty());
  }
}

TEST_CASE("a dlopened library that links libusb itself (as libftdi and libmtp) reaches the shim") {
  AgentProcess agent;
  const RunResult r = dlopen_libusb(agent, {"linked", USBNET_TEST_USER_LIB});
  INFO(r.out << r.err);
  CHECK(r.status == 0);
  CHECK(r.out.find("linked: 2 remote devices through a library that links libusb") !=
        std::string::npos);
  CHECK(r.err.empty());
}

TEST_CASE("a program that never uses libusb: RUNPATH and $ORIGIN searches work, nothing new") {
  AgentProcess agent;
  const std::string host = Programs::test_program("runpath_host");
  const RunResult plain = run({host}, without_shim());
  const RunResult shimmed = run({host}, shim_env(agent));
  INFO(plain.out << plain.err << "\n--- under the shim:\n" << shimmed.out << shimmed.err);
  if (!kSanitizerPreloaded) {
    REQUIRE(plain.status == 0);
    CHECK(plain.out == "the plug-in answers 42\nlibusb is not loaded\n");
  }
  CHECK(shimmed.status == plain.status);
  CHECK(shimmed.out == plain.out);
  CHECK(shimmed.err == plain.err);
}

TEST_CASE("a Python program that never uses libusb: its modules load, libusb does not") {
  AgentProcess agent;
  // Extension modules are dlopened by path; ctypes by name.
  const std::string code =
      "import ctypes, ctypes.util, json, ssl, sqlite3, zlib\n"
      "ctypes.CDLL(ctypes.util.find_library('z'))\n"
      "print('libusb-1.0' in open('/proc/self/maps').read())\n";
  const RunResult plain = run({kPython, "-c", code}, without_shim());
  const RunResult shimmed = run({kPython, "-c", code}, shim_env(agent));
  INFO(plain.out << plain.err << "\n--- under the shim:\n" << shimmed.out << shimmed.err);
  REQUIRE(plain.status == 0);
  CHECK(plain.out == "False\n");
  CHECK(shimmed.status == 0);
  CHECK(shimmed.out == plain.out);
  CHECK(shimmed.err == plain.err);
}

TEST_CASE("pyusb: enumeration, descriptors, strings, control, bulk and interrupt loopback") {
  AgentProcess agent;
  const RunResult r = run({kPython, script("pyusb_check.py")}, shim_env(agent));
  INFO(r.out << r.err);
  CHECK(r.status == 0);
  CHECK(r.out.find("pyusb: all checks passed") != std::string::npos);
  CHECK(r.out.find("strings: ('usbnet', 'Loopback', 'LB0001')") != std::string::npos);
  CHECK(r.err.empty());
}

TEST_CASE("python3-usb1: async transfers in its own event loop, cancellation, hotplug") {
  AgentProcess agent;
  const RunResult r = run({kPython, script("usb1_check.py")}, shim_env(agent));
  INFO(r.out << r.err);
  CHECK(r.status == 0);
  CHECK(r.out.find("python3-usb1: all checks passed") != std::string::npos);
  CHECK(r.err.empty());
}
