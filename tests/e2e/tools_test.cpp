// The field's real tools, unmodified, through the shim against the agent's simulated class
// devices: dfu-util on the DFU bootloader, libftdi (python3-ftdi1) on the FT232R, pyvisa with
// pyvisa-py on the USBTMC instrument. Each test checks the bytes or the answers the tool got.
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <regex>

#include <unistd.h>

#include "support/agent_process.h"
#include "support/shim_env.h"

using namespace usbnet;
using namespace usbnet::test;

namespace {

constexpr std::size_t kFlash = 256 * 1024;
const std::string kPython = "/usr/bin/python3";  // Debian's, with its python3-* packages

std::string script(const std::string& name) {
  return std::string(USBNET_TEST_PYTHON_DIR) + "/" + name;
}

// A directory of its own for a test's files, removed afterwards.
struct WorkDir {
  std::filesystem::path path;
  WorkDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "usbnet-tools.XXXXXX").string();
    REQUIRE(::mkdtemp(tmpl.data()));
    path = tmpl;
  }
  ~WorkDir() { std::filesystem::remove_all(path); }
  std::string file(const std::string& name) const { return (path / name).string(); }
};

std::string image(std::size_t n, unsigned seed) {
  std::string b(n, '\0');
  std::uint32_t x = seed;
  for (char& c : b) {
    x = x * 1103515245 + 12345;
    c = static_cast<char>(x >> 16);
  }
  return b;
}

void write_file(const std::string& path, const std::string& data) {
  std::ofstream(path, std::ios::binary) << data;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

}  // namespace

TEST_CASE("dfu-util -l lists the simulated DFU bootloader") {
  AgentProcess agent({"--simulate", "dfu"});
  const RunResult r = run({"dfu-util", "-l"}, shim_env(agent));
  INFO(r.out << r.err);
  CHECK(r.status == 0);
  CHECK(r.out.find("Found DFU: [1209:0005] ver=0100, devnum=2, cfg=1, intf=0, path=\"201-1\", "
                   "alt=0, name=\"Internal Flash\", serial=\"DFU0001\"") != std::string::npos);
}

TEST_CASE("dfu-util -D writes an image and -U reads it back byte for byte") {
  AgentProcess agent({"--simulate", "dfu"});
  WorkDir dir;
  const std::string firmware = image(100000, 1);
  write_file(dir.file("firmware.bin"), firmware);
  const RunResult down = run({"dfu-util", "-D", dir.file("firmware.bin")}, shim_env(agent));
  INFO(down.out << down.err);
  REQUIRE(down.status == 0);
  CHECK(down.out.find("Device returned transfer size 2048") != std::string::npos);
  CHECK(down.out.find("DFU state(7) = dfuMANIFEST, status(0) = No error condition is present") !=
        std::string::npos);
  CHECK(down.out.find("Done!") != std::string::npos);
  const RunResult up = run({"dfu-util", "-U", dir.file("back.bin")}, shim_env(agent));
  INFO(up.out << up.err);
  REQUIRE(up.status == 0);
  CHECK(up.out.find("Received a total of 100000 bytes") != std::string::npos);
  CHECK(read_file(dir.file("back.bin")) == firmware);
}

TEST_CASE("dfu-util: an image larger than the flash ends in dfuERROR, errADDRESS") {
  AgentProcess agent({"--simulate", "dfu"});
  WorkDir dir;
  const std::string firmware = image(kFlash + 1000, 2);
  write_file(dir.file("big.bin"), firmware);
  const RunResult down = run({"dfu-util", "-D", dir.file("big.bin")}, shim_env(agent));
  INFO(down.out << down.err);
  CHECK(down.status == 74);  // EX_IOERR
  CHECK(down.out.find("DFU state(10) = dfuERROR, status(8) = Cannot program memory due to "
                      "received address that is out of range") != std::string::npos);
  CHECK(down.out.find("Done!") == std::string::npos);
  // The next dfu-util finds the error, clears it, and reads back what fitted.
  const RunResult up = run({"dfu-util", "-U", dir.file("back.bin")}, shim_env(agent));
  INFO(up.out << up.err);
  REQUIRE(up.status == 0);
  CHECK(std::regex_search(up.out, std::regex("DFU state\\(10\\) = dfuERROR, status\\(8\\)[^\\n]*\\n"
                                             "Clearing status\\n"
                                             "Determining device status...\\n"
                                             "DFU state\\(2\\) = dfuIDLE, status\\(0\\)")));
  CHECK(read_file(dir.file("back.bin")) == firmware.substr(0, kFlash));
}

TEST_CASE("libftdi opens the FT232R, sets the line, and reads back what it wrote") {
  AgentProcess agent({"--simulate", "ftdi"});
  const RunResult r = run({kPython, script("ftdi_echo.py")}, shim_env(agent));
  INFO(r.out << r.err);
  CHECK(r.status == 0);
  CHECK(r.out.find("open: type 3, max packet 64\n") != std::string::npos);  // TYPE_R
  CHECK(r.out.find("latency: 2 ms\n") != std::string::npos);
  CHECK(r.out.find("modem status: 0x60b1\n") != std::string::npos);  // CTS, DSR, DCD looped
  CHECK(r.out.find("echo: 8192 bytes written, 8192 read, identical\n") != std::string::npos);
  CHECK(r.out.find("eeprom: 1209:0007 \"usbnet\" \"FT232R USB UART\" \"FT000001\"\n") !=
        std::string::npos);
  CHECK(r.err.find("EEPROM") == std::string::npos);  // libftdi found nothing odd in it
  // The line as the device decoded libftdi's requests (the divisor's nearest rate).
  CHECK(
      agent.process().wait_for_output("simulated ftdi: 115385 baud, 8N1", std::chrono::seconds(5)));
}

TEST_CASE("pyvisa-py finds the USBTMC instrument and queries it") {
  AgentProcess agent({"--simulate", "usbtmc"});
  const RunResult r = run({kPython, script("visa_query.py")}, shim_env(agent));
  INFO(r.out << r.err);
  CHECK(r.status == 0);
  // pyvisa-py 0.5.1 names the resource with decimal IDs; the hex form opens it too.
  CHECK(r.out.find("resources: USB0::4617::6::TMC0001::0::INSTR\n") != std::string::npos);
  CHECK(r.out.find("idn: usbnet,USBTMC Simulated Supply,TMC0001,1.0\n") != std::string::npos);
  CHECK(r.out.find("measure: +2.500000E+00\n") != std::string::npos);
  CHECK(r.out.find("error: -113,\"Undefined header\"\n") != std::string::npos);
  CHECK(r.out.find("read without a query: VI_ERROR_TMO\n") != std::string::npos);
  CHECK(r.out.find("error: -420,\"Query UNTERMINATED\"\nerror: 0,\"No error\"\n") !=
        std::string::npos);
}
