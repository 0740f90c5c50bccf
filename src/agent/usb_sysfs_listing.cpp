#include "agent/usb_sysfs_listing.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <system_error>
#include <vector>

namespace usbnet::agent {

std::optional<std::string> usb_sysfs_listing(const std::string& directory) {
  std::error_code ec;
  std::vector<std::string> names;
  for (std::filesystem::directory_iterator it(directory, ec), end; !ec && it != end;
       it.increment(ec)) {
    std::string name = it->path().filename().string();
    if (name.find(':') == std::string::npos) names.push_back(std::move(name));  // not interfaces
  }
  if (ec) return std::nullopt;
  std::sort(names.begin(), names.end());
  std::string listing;
  for (const std::string& name : names) {
    std::ifstream devnum(std::filesystem::path(directory) / name / "devnum");
    // A device going away between the listing and the read stays "?": the next round tells.
    std::string address(1, '?');
    devnum >> address;
    listing.append(name).append(":").append(address).append(" ");
  }
  return listing;
}

}  // namespace usbnet::agent
