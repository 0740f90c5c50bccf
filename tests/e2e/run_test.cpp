// `usbnet run`: finds the shim, sets the environment, runs the program with its exit status;
// refuses in one line what preloading cannot serve (static, set-uid, another architecture, a
// libusb of the program's own, malformed files); its bad flags.
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <string>

#include <sys/stat.h>
#include <unistd.h>

#include "support/agent_process.h"
#include "support/shim_env.h"
#include "support/text.h"

using namespace usbnet::test;
namespace fs = std::filesystem;

namespace {

// A directory in the build tree (not /tmp, which may be mounted nosuid), removed at the end.
struct ScratchDir {
  fs::path path;
  explicit ScratchDir(const std::string& name) {
    path = fs::path(USBNET_TEST_SCRATCH_DIR) / (name + "-" + std::to_string(::getpid()));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~ScratchDir() {
    std::error_code ignored;
    fs::remove_all(path, ignored);
  }
};

// The environment of a user who has not set anything up: no preload, no USBNET_* variables,
// but whatever the sanitizer build needs in front of the shim.
std::map<std::string, std::string> clean_env() {
  const std::string before_shim = USBNET_PRELOAD_BEFORE_SHIM;
  return {{"LD_PRELOAD", before_shim.empty() ? kUnset : before_shim},
          {"USBNET_AGENT", kUnset},
          {"USBNET_DEVICES", kUnset},
          {"USBNET_SHIM", kUnset},
          {"USBNET_LOG", kUnset}};
}

RunResult usbnet_run(std::vector<std::string> args,
                     std::map<std::string, std::string> env = clean_env()) {
  args.insert(args.begin(), {Programs::cli(), "run"});
  return run(args, env);
}

// stderr is exactly one line that contains `what`.
void one_line_saying(const RunResult& r, const std::string& what) {
  INFO(r.err);
  CHECK(count(r.err, "\n") == 1);
  CHECK(r.err.rfind("usbnet run: ", 0) == 0);
  CHECK(r.err.find(what) != std::string::npos);
}

void write_file(const fs::path& path, const std::string& bytes, fs::perms perms) {
  std::ofstream(path, std::ios::binary) << bytes;
  fs::permissions(path, perms);
}

}  // namespace

TEST_CASE("usbnet run: an unmodified libusb program gets the remote devices") {
  AgentProcess agent;
  const RunResult r = usbnet_run(
      {"--agent", agent.endpoint(), "--devices", "1209:0001", Programs::example("list_devices")});
  INFO(r.out << r.err);
  CHECK(r.status == 0);
  CHECK(r.out.find("ID 1209:0001") != std::string::npos);
  CHECK(r.out.find("ID 1209:0002") == std::string::npos);  // --devices chose one
  CHECK(r.err.empty());
}

TEST_CASE("usbnet run: pyusb lists the simulated devices, python3 -c 'import usb.core ...'") {
  AgentProcess agent;
  const RunResult r =
      usbnet_run({"--agent", agent.endpoint(), "/usr/bin/python3", "-c",
                  "import usb.core\n"
                  "devices = usb.core.find(find_all=True, idVendor=0x1209)\n"
                  "for d in sorted(devices, key=lambda d: d.idProduct):\n"
                  "    print(f'{d.idVendor:04x}:{d.idProduct:04x} {d.product}')\n"});
  INFO(r.out << r.err);
  CHECK(r.status == 0);
  CHECK(r.out == "1209:0001 Loopback\n1209:0002 Boot Mouse\n");
  CHECK(r.err.empty());
}

TEST_CASE("usbnet run: the program's exit status, arguments and environment") {
  AgentProcess agent;
  const std::string leaf = USBNET_TEST_LEAF_LIB;  // any library will do as a preload
  auto env = clean_env();
  env["LD_PRELOAD"] = (env["LD_PRELOAD"] == kUnset ? "" : env["LD_PRELOAD"] + ":") + leaf;
  env["USBNET_LOG"] = "error";
  const RunResult r =
      usbnet_run({"--agent", agent.endpoint(), "--devices", "1209:*", "--", "/bin/sh", "-c",
                  "echo \"$LD_PRELOAD|$USBNET_AGENT|$USBNET_DEVICES|$USBNET_LOG|$1\"; exit 7", "sh",
                  "arg one"},
                 env);
  INFO(r.out << r.err);
  CHECK(r.status == 7);
  const std::string before = USBNET_PRELOAD_BEFORE_SHIM;  // sanitizer runtimes stay first
  CHECK(r.out == before + Programs::shim() + ":" + leaf + "|" + agent.endpoint() +
                     "|1209:*|error|arg one\n");
  CHECK(r.err.empty());

  // Without --agent and USBNET_AGENT: the default agent; USBNET_AGENT and USBNET_DEVICES kept.
  const RunResult defaults =
      usbnet_run({"sh", "-c", "echo $USBNET_AGENT; echo ${USBNET_DEVICES-unset}"});
  CHECK(defaults.status == 0);
  CHECK(defaults.out == "127.0.0.1:3241\nunset\n");
  env = clean_env();
  env["USBNET_AGENT"] = "lab-pc:4000";
  env["USBNET_DEVICES"] = "0483:df11";
  const RunResult kept = usbnet_run({"sh", "-c", "echo $USBNET_AGENT $USBNET_DEVICES"}, env);
  CHECK(kept.out == "lab-pc:4000 0483:df11\n");
}

TEST_CASE("usbnet run: USBNET_SHIM names the shim, a wrong one is one line") {
  auto env = clean_env();
  env["USBNET_SHIM"] = Programs::shim();
  const RunResult given = usbnet_run({"sh", "-c", "echo $LD_PRELOAD"}, env);
  CHECK(given.status == 0);
  CHECK(given.out.find(Programs::shim()) != std::string::npos);
  env["USBNET_SHIM"] = "/nonexistent/libusbnet.so";
  const RunResult wrong = usbnet_run({"true"}, env);
  CHECK(wrong.status == 126);
  one_line_saying(wrong, "USBNET_SHIM=/nonexistent/libusbnet.so is not a file");
  env["USBNET_SHIM"] = "/bin/true";
  const RunResult not_shim = usbnet_run({"true"}, env);
  CHECK(not_shim.status == 126);
  one_line_saying(not_shim, "exports no libusb function");
}

TEST_CASE("usbnet run refuses a statically linked program, also behind a #! line") {
  ScratchDir dir("static");
  const RunResult r = usbnet_run({"/bin/busybox", "true"});  // busybox-static
  CHECK(r.status == 126);
  one_line_saying(r, "/bin/busybox is statically linked");
  const fs::path script = dir.path / "script";
  write_file(script, "#!/bin/busybox sh\necho ran\n", fs::perms::owner_all);
  const RunResult s = usbnet_run({script.string()});
  CHECK(s.status == 126);
  CHECK(s.out.empty());  // nothing ran
  one_line_saying(s, "is run by /bin/busybox, which is statically linked");
  // #!/usr/bin/env NAME: NAME as PATH finds it.
  write_file(script, "#!/usr/bin/env busybox sh\necho ran\n", fs::perms::owner_all);
  auto env = clean_env();
  env["PATH"] = "/bin:/usr/bin";
  const RunResult e = usbnet_run({script.string()}, env);
  CHECK(e.status == 126);
  one_line_saying(e, "is run by /bin/busybox, which is statically linked");
  // A script whose interpreter is dynamic runs.
  write_file(script, "#!/bin/sh\necho ran \"$1\"\n", fs::perms::owner_all);
  const RunResult ok = usbnet_run({script.string(), "x"});
  CHECK(ok.status == 0);
  CHECK(ok.out == "ran x\n");
}

TEST_CASE("usbnet run refuses a set-uid program of another user") {
  if (::geteuid() != 0) {
    WARN("not root: cannot make a set-uid program of another user");
    return;
  }
  ScratchDir dir("setuid");
  const fs::path program = dir.path / "true";
  fs::copy_file("/bin/true", program);
  REQUIRE(::chown(program.c_str(), 65534, 65534) == 0);  // nobody
  REQUIRE(::chmod(program.c_str(), 04755) == 0);
  const RunResult r = usbnet_run({program.string()});
  CHECK(r.status == 126);
  one_line_saying(r, "is set-uid: the dynamic loader ignores LD_PRELOAD for it");
  REQUIRE(::chmod(program.c_str(), 02755) == 0);
  const RunResult g = usbnet_run({program.string()});
  CHECK(g.status == 126);
  one_line_saying(g, "is set-gid");
}

TEST_CASE("usbnet run refuses a program that carries its own libusb") {
  const RunResult linked_in = usbnet_run({Programs::test_program("own_libusb")});
  CHECK(linked_in.status == 126);
  one_line_saying(linked_in, "carries its own libusb (it defines libusb_init)");
  const RunResult newer = usbnet_run({Programs::test_program("uses_newer_libusb")});
  CHECK(newer.status == 126);
  one_line_saying(newer,
                  "libusb-1.0.so.0) with functions libusbnet.so does not have "
                  "(libusb_init_context)");
}

TEST_CASE("usbnet run: a program with a copy of the system's libusb of its own works") {
  AgentProcess agent;
  ScratchDir dir("copy");
  fs::copy_file(USBNET_TEST_SYSTEM_LIBUSB, dir.path / "libusb-1.0.so.0");
  auto env = clean_env();
  env["LD_LIBRARY_PATH"] = dir.path.string();
  const RunResult r = usbnet_run(
      {"--agent", agent.endpoint(), Programs::example("list_devices"), "1209:0001"}, env);
  INFO(r.out << r.err);
  CHECK(r.status == 0);
  CHECK(r.out.find("ID 1209:0001") != std::string::npos);
  CHECK(r.err.empty());
}

TEST_CASE("usbnet run refuses another architecture and malformed files in one line") {
  ScratchDir dir("elf");
  // An ELF header of a 32-bit i386 executable, no more.
  std::string header(52, '\0');
  header.replace(0, 7,
                 "\x7f"
                 "ELF\x01\x01\x01");
  header[16] = 2;   // ET_EXEC
  header[18] = 3;   // EM_386
  header[20] = 1;   // EV_CURRENT
  header[40] = 52;  // e_ehsize
  write_file(dir.path / "i386", header, fs::perms::owner_all);
  const RunResult arch = usbnet_run({(dir.path / "i386").string()});
  CHECK(arch.status == 126);
  one_line_saying(arch, "is a i386 program and libusbnet.so is x86-64");

  // /bin/true cut short at many lengths, and with its header damaged: one line each, no crash.
  std::ifstream in("/bin/true", std::ios::binary);
  const std::string whole((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  REQUIRE(whole.size() > 4096);
  std::vector<std::string> broken;
  for (std::size_t length : {4, 16, 63, 64, 100, 500, 1000, 4000}) {
    broken.push_back(whole.substr(0, length));
  }
  std::string bad_phoff = whole;
  for (int i = 32; i < 40; ++i) bad_phoff[i] = '\x7f';  // e_phoff far past the end
  broken.push_back(bad_phoff);
  for (std::size_t i = 0; i < broken.size(); ++i) {
    const fs::path path = dir.path / ("broken" + std::to_string(i));
    write_file(path, broken[i], fs::perms::owner_all);
    const RunResult r = usbnet_run({path.string()});
    INFO("file " << i << " of " << broken[i].size() << " bytes");
    CHECK(r.status == 126);
    one_line_saying(r, "not a valid ELF file");
  }
}

TEST_CASE("usbnet run: bad flags, no program, a missing program, --help") {
  const RunResult agent = usbnet_run({"--agent", "host:99999", "true"});
  CHECK(agent.status == 2);
  one_line_saying(agent, "--agent");
  const RunResult devices = usbnet_run({"--devices", "12345:zz", "true"});
  CHECK(devices.status == 2);
  one_line_saying(devices, "--devices");
  const RunResult none = usbnet_run({});
  CHECK(none.status == 2);
  one_line_saying(none, "no program to run");
  const RunResult unknown = usbnet_run({"--bogus", "true"});
  CHECK(unknown.status == 2);
  one_line_saying(unknown, "--bogus");
  const RunResult missing = usbnet_run({"no-such-program-here"});
  CHECK(missing.status == 127);
  one_line_saying(missing, "no-such-program-here: command not found in PATH");
  const RunResult help = usbnet_run({"--help"});
  CHECK(help.status == 0);
  CHECK(help.out.find("--agent") != std::string::npos);
  CHECK(help.out.find("--devices") != std::string::npos);
  CHECK(help.out.find("statically linked program, a set-uid or set-gid program") !=
        std::string::npos);
}
