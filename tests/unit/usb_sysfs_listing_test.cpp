// The agent's cheap look at sysfs before a rescan: it must change whenever the devices libusb
// would find change (an arrival, a departure, a device plugged in again at a new address), and
// only then.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "agent/usb_sysfs_listing.h"

using usbnet::agent::usb_sysfs_listing;
namespace fs = std::filesystem;

namespace {

// A directory shaped like /sys/bus/usb/devices, removed at the end.
struct FakeSysfs {
  FakeSysfs() {
    char pattern[] = "/tmp/usbnet-sysfs-XXXXXX";
    root = ::mkdtemp(pattern);
  }
  ~FakeSysfs() { fs::remove_all(root); }
  void device(const std::string& name, const std::string& devnum) {
    fs::create_directories(root / name);
    std::ofstream(root / name / "devnum") << devnum << "\n";
  }
  std::string path() const { return root.string(); }
  fs::path root;
};

}  // namespace

TEST_CASE("the sysfs listing names each device and its address, interfaces left out") {
  FakeSysfs sys;
  sys.device("usb1", "1");
  sys.device("1-2", "5");
  fs::create_directories(sys.root / "1-2:1.0");  // an interface
  CHECK(usb_sysfs_listing(sys.path()) == "1-2:5 usb1:1 ");
}

TEST_CASE("the sysfs listing changes when a device arrives, leaves or comes back") {
  FakeSysfs sys;
  sys.device("usb1", "1");
  sys.device("1-2", "5");
  const auto before = usb_sysfs_listing(sys.path());
  CHECK(usb_sysfs_listing(sys.path()) == before);

  sys.device("1-3", "6");
  const auto arrived = usb_sysfs_listing(sys.path());
  CHECK(arrived != before);

  fs::remove_all(sys.root / "1-3");
  CHECK(usb_sysfs_listing(sys.path()) == before);

  sys.device("1-2", "9");  // the same port, plugged in again
  CHECK(usb_sysfs_listing(sys.path()) != before);
}

TEST_CASE("without a readable directory there is no listing (every round enumerates)") {
  CHECK_FALSE(usb_sysfs_listing("/nonexistent/usbnet/sysfs").has_value());
}
