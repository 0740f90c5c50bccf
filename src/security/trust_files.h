// The two trust files, one key per line, '#' comments and blank lines ignored:
//
//   authorized_clients (the agent's state directory): the clients it lets in,
//     usbnet-ed25519 BASE64 comment
//   known_agents (the client user's directory): the agents it has paired with, pinned,
//     HOST:PORT usbnet-ed25519 BASE64 comment
//
// A malformed line makes the whole file unusable (it says FILE:LINE: what is wrong): a trust
// file that is half read would admit or refuse by accident.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "security/key_line.h"
#include "usbnet/expected.h"

namespace usbnet::security {

struct TrustedKey {
  KeyLine key;
  std::string agent;  // known_agents only: HOST:PORT as the user wrote it
  int line = 0;       // in the file, for messages
};

class AuthorizedClients {
 public:
  // `origin` names the text in errors (the file's path).
  static Expected<AuthorizedClients, std::string> parse(std::string_view text,
                                                        const std::string& origin);
  // An absent file is an empty list.
  static Expected<AuthorizedClients, std::string> load(const std::filesystem::path& path);

  const TrustedKey* find(const PublicKey& key) const;
  const std::vector<TrustedKey>& keys() const { return keys_; }

 private:
  std::vector<TrustedKey> keys_;
};

// Adds a key line to authorized_clients unless the key is there already (then false).
Expected<bool, std::string> authorize_client(const std::filesystem::path& path, const KeyLine& key);

// Removes from authorized_clients every line whose key has the fingerprint `who` (SHA256:...)
// or whose comment is `who`, keeping every other line as it was; returns the lines removed
// (none: the file is left untouched).
Expected<std::vector<TrustedKey>, std::string> revoke_clients(const std::filesystem::path& path,
                                                              std::string_view who);

class KnownAgents {
 public:
  static Expected<KnownAgents, std::string> parse(std::string_view text, const std::string& origin);
  static Expected<KnownAgents, std::string> load(const std::filesystem::path& path);

  // The pinned key of an agent, by HOST:PORT.
  const TrustedKey* find(std::string_view agent) const;
  const std::vector<TrustedKey>& agents() const { return agents_; }

 private:
  std::vector<TrustedKey> agents_;
};

// Pins an agent's key in known_agents. An agent pinned with the same key already: false (nothing
// to do); pinned with another key: an error saying so, unless `replace` (then that line goes).
Expected<bool, std::string> pin_agent(const std::filesystem::path& path, const std::string& agent,
                                      const KeyLine& key, bool replace);

}  // namespace usbnet::security
