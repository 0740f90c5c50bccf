// usbnet-agent --config FILE: the agent's settings from a TOML file.
//
// The file holds the same settings as the command line, under the same names: every option of
// the agent's CLI11 app is a key, named like its long flag without the dashes (`--listen` is
// `listen = "0.0.0.0:3241"`, `--no-usb` is `no-usb = true`, `--simulate` takes a string or an
// array of strings). A key in a table is the table's name, a dash, and the key: `[tls]` with
// `cert = "..."` sets `--tls-cert`. Values go through the option's own conversion and checks,
// so a key accepts exactly what its flag accepts. A flag given on the command line beats the
// file.
//
// Adding a setting: add the CLI11 option in main.cpp; it is a configuration key at once (and
// documented by --help, hence the man page). An option that makes no sense in a file (--config
// itself, one-shot actions) is marked `->configurable(false)`.
//
// The [[allow]] tables are the device policy (device_policy.h), read by the agent itself, not
// options; SIGHUP reads them again, and only them.
#pragma once

#include <CLI/CLI.hpp>
#include <optional>
#include <string>

#include "usbnet/expected.h"

namespace usbnet::agent {

// Applies the settings of the TOML file `path` to the options of `app` that the command line
// did not set (call it after app.parse()). Returns the first error, naming the file, the line
// and the key: a syntax error, an unknown key, a value of the wrong type or one its option
// refuses.
std::optional<std::string> apply_config_file(CLI::App& app, const std::string& path);

// The file's settings other than [[allow]], as canonical text: what a reload compares to tell
// whether settings that need a restart changed.
Expected<std::string, std::string> settings_text(const std::string& path);

}  // namespace usbnet::agent
