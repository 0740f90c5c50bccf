#include "agent/device_policy.h"

#include <fmt/format.h>

#include <toml++/toml.h>
#include <algorithm>
#include <charconv>
#include <fstream>

#include "common/topology.h"

namespace usbnet::agent {

namespace {

constexpr std::uint8_t kInterfaceDescriptor = 4;
constexpr std::size_t kMaxConfigFile = 1024 * 1024;

// Two hex digits.
std::optional<std::uint8_t> parse_class(std::string_view text) {
  if (text.size() != 2) return std::nullopt;
  unsigned value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value, 16);
  if (ec != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return static_cast<std::uint8_t>(value);
}

// A decimal number from 1 to `max`.
std::optional<std::uint8_t> parse_number(std::string_view text, unsigned max) {
  if (text.empty() || text.size() > 3) return std::nullopt;
  unsigned value = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value, 10);
  if (ec != std::errc() || end != text.data() + text.size() || value < 1 || value > max) {
    return std::nullopt;
  }
  return static_cast<std::uint8_t>(value);
}

// "BUS-PORT[.PORT...]", as Linux names a device's place in sysfs.
bool parse_port_path(std::string_view text, std::uint8_t& bus, std::vector<std::uint8_t>& ports) {
  const auto dash = text.find('-');
  if (dash == std::string_view::npos) return false;
  const auto b = parse_number(text.substr(0, dash), 255);
  if (!b) return false;
  bus = *b;
  std::string_view rest = text.substr(dash + 1);
  for (;;) {
    const auto dot = rest.find('.');
    const auto port = parse_number(rest.substr(0, dot), 255);
    if (!port || ports.size() == 7) return false;  // USB allows 7 tiers below the root
    ports.push_back(*port);
    if (dot == std::string_view::npos) return true;
    rest = rest.substr(dot + 1);
  }
}

bool has_class(const wire::DeviceInfo& device, std::uint8_t class_code) {
  if (device.device_descriptor[4] == class_code) return true;
  for (const wire::Bytes& config : device.configs) {
    std::size_t at = 0;
    while (at + 1 < config.size()) {
      const std::size_t length = config[at];
      if (length < 2) break;  // malformed: stop rather than loop
      if (config[at + 1] == kInterfaceDescriptor && length >= 9 && at + 5 < config.size() &&
          config[at + 5] == class_code) {
        return true;
      }
      at += length;
    }
  }
  return false;
}

// UTF-16LE (a string descriptor's text) to UTF-8; unpaired surrogates become U+FFFD.
std::string utf8_of_utf16(const std::uint8_t* data, std::size_t length) {
  std::string out;
  auto put = [&out](std::uint32_t c) {
    if (c < 0x80) {
      out += static_cast<char>(c);
    } else if (c < 0x800) {
      out += static_cast<char>(0xc0 | (c >> 6));
      out += static_cast<char>(0x80 | (c & 0x3f));
    } else if (c < 0x10000) {
      out += static_cast<char>(0xe0 | (c >> 12));
      out += static_cast<char>(0x80 | ((c >> 6) & 0x3f));
      out += static_cast<char>(0x80 | (c & 0x3f));
    } else {
      out += static_cast<char>(0xf0 | (c >> 18));
      out += static_cast<char>(0x80 | ((c >> 12) & 0x3f));
      out += static_cast<char>(0x80 | ((c >> 6) & 0x3f));
      out += static_cast<char>(0x80 | (c & 0x3f));
    }
  };
  for (std::size_t i = 0; i + 1 < length; i += 2) {
    std::uint32_t c = data[i] | (data[i + 1] << 8);
    if (c >= 0xd800 && c < 0xdc00 && i + 3 < length) {
      const std::uint32_t low = data[i + 2] | (data[i + 3] << 8);
      if (low >= 0xdc00 && low < 0xe000) {
        c = 0x10000 + ((c - 0xd800) << 10) + (low - 0xdc00);
        i += 2;
      } else {
        c = 0xfffd;
      }
    } else if (c >= 0xd800 && c < 0xe000) {
      c = 0xfffd;
    }
    put(c);
  }
  return out;
}

bool is_fingerprint_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
         c == '/';
}

std::string where(const std::string& origin, const toml::source_region& region) {
  return fmt::format("{}:{}", origin, region.begin.line);
}

// A client entry: the error, if it is not one.
std::optional<std::string> check_client(std::string_view entry) {
  if (entry.empty()) return "an empty client name";
  if (entry.starts_with("SHA256:")) {
    const std::string_view body = entry.substr(7);
    if (body.size() != 43 || !std::all_of(body.begin(), body.end(), is_fingerprint_char)) {
      return fmt::format(
          "'{}' is not a key fingerprint: expected SHA256: and 43 base64 characters, as the "
          "agent logs them",
          entry);
    }
    return std::nullopt;
  }
  if (entry.front() == ' ' || entry.back() == ' ' || entry.find('\n') != std::string_view::npos) {
    return fmt::format("'{}': a client name has no surrounding blanks and no line break", entry);
  }
  return std::nullopt;
}

// The strings of `key` in [[allow]] table `number` (at `table_at`), with where each is.
Expected<std::vector<std::pair<std::string, toml::source_region>>, std::string> strings_of(
    const toml::table& table, std::string_view key, const std::string& origin, int number,
    const toml::source_region& table_at) {
  const toml::node* node = table.get(key);
  if (!node) {
    return Unexpected{
        fmt::format("{}: [[allow]] table {}: no '{}' list", where(origin, table_at), number, key)};
  }
  const toml::array* array = node->as_array();
  std::vector<std::pair<std::string, toml::source_region>> out;
  if (array) {
    for (const toml::node& element : *array) {
      const auto* text = element.as_string();
      if (!text) {
        array = nullptr;
        break;
      }
      out.emplace_back(text->get(), element.source());
    }
  }
  if (!array) {
    return Unexpected{
        fmt::format("{}: [[allow]] table {}: '{}' must be a list of strings ({} = "
                    "[\"...\"])",
                    where(origin, node->source()), number, key, key)};
  }
  if (out.empty()) {
    return Unexpected{fmt::format("{}: [[allow]] table {}: '{}' is empty",
                                  where(origin, node->source()), number, key)};
  }
  return out;
}

}  // namespace

// ---- device rules --------------------------------------------------------------------------

Expected<DeviceRule, std::string> DeviceRule::parse(std::string_view text) {
  DeviceRule rule;
  rule.text_ = std::string(text);
  if (text.starts_with("class=")) {
    const auto code = parse_class(text.substr(6));
    if (!code) {
      return Unexpected{fmt::format(
          "'{}': a class is two hex digits, as in class=08 (mass storage) or class=ff", text)};
    }
    rule.kind_ = Kind::Class;
    rule.class_code_ = *code;
    return rule;
  }
  if (text.starts_with("serial=")) {
    if (text.size() == 7) return Unexpected{fmt::format("'{}': no serial number after it", text)};
    rule.kind_ = Kind::Serial;
    rule.serial_ = std::string(text.substr(7));
    return rule;
  }
  if (text.starts_with("port=")) {
    if (!parse_port_path(text.substr(5), rule.bus_, rule.ports_)) {
      return Unexpected{fmt::format(
          "'{}': a port path is BUS-PORT[.PORT...] in decimal, as Linux names it (port=1-1.2)",
          text)};
    }
    rule.kind_ = Kind::Port;
    return rule;
  }
  if (text.find(',') != std::string_view::npos || text.empty()) {
    return Unexpected{fmt::format("'{}' is not one device rule: write one per string", text)};
  }
  auto filter = DeviceFilter::parse(text);
  if (!filter || filter->empty()) {
    return Unexpected{fmt::format(
        "'{}' is not a device rule: expected VID:PID in hex (046d:c52b, 1209:*, or * for every "
        "device), class=HH, serial=TEXT or port=BUS-PORT[.PORT...]",
        text)};
  }
  rule.kind_ = Kind::VidPid;
  rule.vid_pid_ = std::move(*filter);
  return rule;
}

bool DeviceRule::matches(const wire::DeviceInfo& device) const {
  switch (kind_) {
    case Kind::VidPid:
      return vid_pid_.matches(topology::vendor_id(device), topology::product_id(device));
    case Kind::Class:
      return has_class(device, class_code_);
    case Kind::Serial: {
      const auto serial = serial_number(device);
      return serial && *serial == serial_;
    }
    case Kind::Port:
      return device.bus_number == bus_ && device.port_numbers.size() >= ports_.size() &&
             std::equal(ports_.begin(), ports_.end(), device.port_numbers.begin());
  }
  return false;
}

std::optional<std::string> serial_number(const wire::DeviceInfo& device) {
  const std::uint8_t index = device.device_descriptor[16];
  if (index == 0) return std::nullopt;
  for (const wire::StringDescriptor& s : device.strings) {
    if (s.index != index || s.descriptor.size() < 2) continue;
    const std::size_t length = std::min<std::size_t>(s.descriptor[0], s.descriptor.size());
    if (length < 2) continue;
    return utf8_of_utf16(s.descriptor.data() + 2, length - 2);
  }
  return std::nullopt;
}

// ---- rights --------------------------------------------------------------------------------

DeviceRights DeviceRights::every_device() {
  DeviceRights rights;
  rights.all_ = true;
  return rights;
}

bool DeviceRights::may_use(const wire::DeviceInfo& device) const {
  if (all_) return true;
  return std::any_of(rules_.begin(), rules_.end(),
                     [&](const DeviceRule& r) { return r.matches(device); });
}

std::string DeviceRights::describe() const {
  if (all_) return "every device";
  if (rules_.empty()) return "no device";
  std::string out;
  for (const DeviceRule& r : rules_) out += (out.empty() ? "" : ", ") + r.text();
  return out;
}

// ---- the policy ----------------------------------------------------------------------------

Expected<DevicePolicy, std::string> DevicePolicy::parse(std::string_view text,
                                                        const std::string& origin) {
  toml::table root;
  try {
    root = toml::parse(text, origin);
  } catch (const toml::parse_error& e) {
    const auto& at = e.source().begin;
    return Unexpected{fmt::format("{}:{}:{}: {}", origin, at.line, at.column, e.description())};
  }
  DevicePolicy policy;
  const toml::node* allow = root.get("allow");
  if (!allow) return policy;
  const toml::array* tables = allow->as_array();
  if (!tables || !tables->is_array_of_tables()) {
    return Unexpected{fmt::format(
        "{}: 'allow' must be [[allow]] tables (each with clients = [...] and devices = [...])",
        where(origin, allow->source()))};
  }
  int number = 0;
  for (const toml::node& node : *tables) {
    ++number;
    const toml::table& table = *node.as_table();
    for (const auto& [key, value] : table) {
      if (key.str() != "clients" && key.str() != "devices") {
        return Unexpected{fmt::format(
            "{}:{}: [[allow]] table {}: unknown key '{}' (a table has clients and devices; the "
            "agent's other settings go above the first [[allow]])",
            origin, key.source().begin.line, number, key.str())};
      }
    }
    auto clients = strings_of(table, "clients", origin, number, node.source());
    if (!clients) return Unexpected{clients.error()};
    auto devices = strings_of(table, "devices", origin, number, node.source());
    if (!devices) return Unexpected{devices.error()};
    Allow entry;
    for (auto& [client, region] : *clients) {
      if (auto error = check_client(client)) {
        return Unexpected{fmt::format("{}: [[allow]] table {}: clients: {}", where(origin, region),
                                      number, *error)};
      }
      entry.clients.push_back(std::move(client));
    }
    for (auto& [device, region] : *devices) {
      auto rule = DeviceRule::parse(device);
      if (!rule) {
        return Unexpected{fmt::format("{}: [[allow]] table {}: devices: {}", where(origin, region),
                                      number, rule.error())};
      }
      entry.devices.push_back(std::move(*rule));
    }
    policy.tables_.push_back(std::move(entry));
  }
  return policy;
}

Expected<DevicePolicy, std::string> DevicePolicy::load(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Unexpected{fmt::format("{}: cannot read it", path.string())};
  std::string text(kMaxConfigFile + 1, '\0');
  in.read(text.data(), static_cast<std::streamsize>(text.size()));
  if (in.bad()) return Unexpected{fmt::format("{}: cannot read it", path.string())};
  text.resize(static_cast<std::size_t>(in.gcount()));
  if (text.size() > kMaxConfigFile) {
    return Unexpected{fmt::format("{}: larger than {} bytes", path.string(), kMaxConfigFile)};
  }
  return parse(text, path.string());
}

DeviceRights DevicePolicy::rights_for(const PolicyClient& client) const {
  if (tables_.empty()) return DeviceRights::every_device();
  DeviceRights rights;
  for (const Allow& table : tables_) {
    const bool named = std::any_of(table.clients.begin(), table.clients.end(), [&](auto& c) {
      if (c == "*") return true;
      if (c == "plaintext") return !client.tls;
      if (!client.tls) return false;
      return c == client.fingerprint || (!client.name.empty() && c == client.name);
    });
    if (!named) continue;
    for (const DeviceRule& rule : table.devices) {
      if (rule.text() == "*") return DeviceRights::every_device();
      if (std::find(rights.rules_.begin(), rights.rules_.end(), rule) == rights.rules_.end()) {
        rights.rules_.push_back(rule);
      }
    }
  }
  return rights;
}

}  // namespace usbnet::agent
