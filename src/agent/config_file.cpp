#include "agent/config_file.h"

#include <fmt/format.h>

#include <toml++/toml.h>
#include <sstream>
#include <vector>

namespace usbnet::agent {

namespace {

constexpr std::string_view kPolicyKey = "allow";

std::string where(const std::string& path, const toml::source_region& region) {
  return fmt::format("{}:{}", path, region.begin.line);
}

// The text CLI11 would have received on the command line for one TOML value.
std::optional<std::string> scalar_text(const toml::node& node) {
  if (const auto* s = node.as_string()) return s->get();
  if (const auto* i = node.as_integer()) return std::to_string(i->get());
  if (const auto* b = node.as_boolean()) return std::string(b->get() ? "true" : "false");
  if (const auto* f = node.as_floating_point()) return fmt::format("{}", f->get());
  return std::nullopt;
}

struct Setting {
  std::string key;  // the flag's name without dashes
  const toml::node* value;
  toml::source_region region;
};

// Tables flatten into dash-joined keys.
std::optional<std::string> collect(const toml::table& table, const std::string& prefix,
                                   const std::string& path, std::vector<Setting>& out) {
  for (const auto& [key, value] : table) {
    // The device policy's tables (device_policy.h), not an option.
    if (prefix.empty() && key.str() == kPolicyKey) continue;
    const std::string name = prefix + std::string(key.str());
    if (const auto* sub = value.as_table()) {
      if (auto error = collect(*sub, name + "-", path, out)) return error;
      continue;
    }
    out.push_back(Setting{name, &value, key.source()});
  }
  return std::nullopt;
}

}  // namespace

std::optional<std::string> apply_config_file(CLI::App& app, const std::string& path) {
  toml::table table;
  try {
    table = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    const auto& at = e.source().begin;
    if (at.line == 0) return fmt::format("{}: {}", path, e.description());
    return fmt::format("{}:{}:{}: {}", path, at.line, at.column, e.description());
  }
  std::vector<Setting> settings;
  if (auto error = collect(table, "", path, settings)) return error;
  for (const Setting& s : settings) {
    CLI::Option* option = app.get_option_no_throw("--" + s.key);
    if (!option || !option->get_configurable()) {
      return fmt::format(
          "{}: unknown key '{}' (the keys are the long flags of --help, without "
          "the dashes)",
          where(path, s.region), s.key);
    }
    if (option->count() > 0) continue;  // the command line said otherwise
    std::vector<std::string> values;
    if (const auto* array = s.value->as_array()) {
      for (const toml::node& element : *array) {
        auto text = scalar_text(element);
        if (!text) {
          return fmt::format(
              "{}: key '{}': an array element must be a string, a number or a "
              "boolean",
              where(path, s.region), s.key);
        }
        values.push_back(*text);
      }
    } else if (auto text = scalar_text(*s.value)) {
      values.push_back(*text);
    } else {
      return fmt::format(
          "{}: key '{}': the value must be a string, a number, a boolean or an "
          "array of them",
          where(path, s.region), s.key);
    }
    try {
      option->add_result(values);
      option->run_callback();
    } catch (const CLI::Error& e) {
      return fmt::format("{}: key '{}': {}", where(path, s.region), s.key, e.what());
    }
  }
  return std::nullopt;
}

Expected<std::string, std::string> settings_text(const std::string& path) {
  try {
    toml::table table = toml::parse_file(path);
    table.erase(kPolicyKey);
    std::ostringstream out;
    out << table;
    return out.str();
  } catch (const toml::parse_error& e) {
    return Unexpected{fmt::format("{}:{}: {}", path, e.source().begin.line, e.description())};
  }
}

}  // namespace usbnet::agent
