// Key and trust files on disk: private files (mode 0600, in a 0700 directory), created
// atomically so that two processes starting at once end up with the same key, and owned by the
// directory's owner when root writes them (an administrator running `usbnet-agent authorize`
// for a service that runs as its own user).
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include "security/ed25519_key.h"
#include "usbnet/expected.h"

namespace usbnet::security {

// Reads a whole file of at most `max_bytes`. nullopt (no error) if it does not exist.
Expected<std::optional<std::string>, std::string> read_small_file(const std::filesystem::path& path,
                                                                  std::size_t max_bytes);

// Creates the directory (and its parents) with mode 0700 if it is missing.
std::optional<std::string> make_private_dir(const std::filesystem::path& dir);

// Writes `content` to `path` (mode 0600) through a temporary file: replacing what was there, or,
// with `exclusive`, only if `path` does not exist yet (then false: someone else wrote it first).
Expected<bool, std::string> write_private_file(const std::filesystem::path& path,
                                               std::string_view content, bool exclusive);

// Appends one line to `path` (created with mode 0600 when missing).
std::optional<std::string> append_private_line(const std::filesystem::path& path,
                                               std::string_view line);

// The key pair in `path` (PEM), created with `comment` when it does not exist, with its public
// line beside it in `path`.pub. `created` tells which. A key file that others may read is
// refused, as ssh does.
struct LoadedKey {
  KeyPair key;
  bool created = false;
};
Expected<LoadedKey, std::string> load_or_create_key(const std::filesystem::path& path,
                                                    std::string_view comment);
// The key pair in `path`; an error if it does not exist.
Expected<KeyPair, std::string> load_key(const std::filesystem::path& path);

}  // namespace usbnet::security
