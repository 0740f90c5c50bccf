// Which clients may see and use which devices: the [[allow]] tables of the agent's
// configuration file (pure logic, no sockets).
//
//   [[allow]]
//   clients = ["SHA256:...", "alice@laptop"]
//   devices = ["046d:c52b", "1209:*", "class=08", "serial=ABC123", "port=1-1.2"]
//
// A client entry is a key's fingerprint, a name (the comment of the key's authorized_clients
// line, or the common name of a certificate --client-ca accepted), "*" (every client) or
// "plaintext" (the clients served without TLS: on loopback, or with --insecure). A device entry
// is VID:PID in hex ('*' for any part, or "*" alone for every device), class=HH (the device's
// class or any of its interfaces' classes, two hex digits), serial=TEXT (its serial number
// string, exactly) or port=BUS-PORT[.PORT...] (the device at that port path, and every device
// below it when it is a hub, as Linux names them: 1-1.2).
//
// No [[allow]] table: every client may use every exported device. With one or more, a client
// may use the union of the devices of the tables that name it, and a client that none names
// may use no device. The hubs above a device a client may use are listed to it too, as
// topology (the agent refuses to open a hub to anyone).
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/device_filter.h"
#include "usbnet/expected.h"
#include "usbnet/messages.h"

namespace usbnet::agent {

// One entry of an [[allow]] table's `devices`.
class DeviceRule {
 public:
  // The error says what is wrong and what is expected, without where (callers add that).
  static Expected<DeviceRule, std::string> parse(std::string_view text);

  bool matches(const wire::DeviceInfo& device) const;
  const std::string& text() const { return text_; }
  bool operator==(const DeviceRule& other) const { return text_ == other.text_; }

 private:
  enum class Kind { VidPid, Class, Serial, Port };
  Kind kind_ = Kind::VidPid;
  DeviceFilter vid_pid_;
  std::uint8_t class_code_ = 0;
  std::string serial_;
  std::uint8_t bus_ = 0;
  std::vector<std::uint8_t> ports_;
  std::string text_;  // as written
};

// A client as the policy sees it.
struct PolicyClient {
  bool tls = false;         // false: a plaintext client
  std::string fingerprint;  // TLS: SHA256:... of its key
  std::string name;         // TLS: its authorized_clients comment, or its certificate's CN
};

// What one client may use.
class DeviceRights {
 public:
  static DeviceRights every_device();
  static DeviceRights no_device() { return {}; }

  bool may_use(const wire::DeviceInfo& device) const;
  bool everything() const { return all_; }
  bool nothing() const { return !all_ && rules_.empty(); }
  // "every device", "no device", or the rules: "1209:*, class=08".
  std::string describe() const;
  bool operator==(const DeviceRights&) const = default;

 private:
  friend class DevicePolicy;
  bool all_ = false;
  std::vector<DeviceRule> rules_;
};

class DevicePolicy {
 public:
  // No table: every client may use every device.
  DevicePolicy() = default;
  // The [[allow]] tables of a configuration file's TOML text, other keys ignored. `origin`
  // names the text in errors, which say FILE:LINE, the table's number and the bad entry.
  static Expected<DevicePolicy, std::string> parse(std::string_view toml,
                                                   const std::string& origin);
  static Expected<DevicePolicy, std::string> load(const std::filesystem::path& path);

  // True when at least one [[allow]] table exists (then unnamed clients get nothing).
  bool restricts() const { return !tables_.empty(); }
  std::size_t table_count() const { return tables_.size(); }
  DeviceRights rights_for(const PolicyClient& client) const;

 private:
  struct Allow {
    std::vector<std::string> clients;
    std::vector<DeviceRule> devices;
  };
  std::vector<Allow> tables_;
};

// The serial number string of a device record (its iSerialNumber string, decoded), if it has
// one.
std::optional<std::string> serial_number(const wire::DeviceInfo& device);

}  // namespace usbnet::agent
