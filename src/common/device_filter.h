// Which devices a rule selects, by VID:PID: "1209:0001", "1209:*", "*:*" or "*", several
// separated by commas. Used by the agent's --export and the shim's USBNET_DEVICES.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "usbnet/expected.h"

namespace usbnet {

class DeviceFilter {
 public:
  // Selects every device.
  static DeviceFilter all();
  // Selects no device.
  static DeviceFilter none() { return DeviceFilter{}; }
  // Parses a comma-separated list; an empty text selects nothing. The error names the bad
  // entry and says what is expected.
  static Expected<DeviceFilter, std::string> parse(std::string_view text);

  struct Rule {
    std::optional<std::uint16_t> vendor;   // nullopt: any
    std::optional<std::uint16_t> product;  // nullopt: any
  };

  bool matches(std::uint16_t vendor, std::uint16_t product) const;
  bool empty() const { return rules_.empty(); }
  std::string to_string() const;
  const std::vector<Rule>& rules() const { return rules_; }

 private:
  std::vector<Rule> rules_;
};

}  // namespace usbnet
