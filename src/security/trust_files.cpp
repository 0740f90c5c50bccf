#include "security/trust_files.h"

#include <fmt/format.h>

#include <algorithm>

#include "security/key_store.h"

namespace usbnet::security {

namespace {

constexpr std::size_t kMaxTrustFile = 1024 * 1024;

// Calls `fn(line_number, text)` for every line that is neither blank nor a comment; stops at the
// first error it returns.
template <typename Fn>
std::optional<std::string> for_each_entry(std::string_view text, Fn&& fn) {
  int number = 0;
  while (!text.empty()) {
    const std::size_t end = text.find('\n');
    std::string_view line = text.substr(0, end);
    text = end == std::string_view::npos ? std::string_view{} : text.substr(end + 1);
    ++number;
    const std::size_t first = line.find_first_not_of(" \t\r");
    if (first == std::string_view::npos || line[first] == '#') continue;
    if (auto error = fn(number, line.substr(first))) return error;
  }
  return std::nullopt;
}

// The file's text with each line replaced by what `fn(line_number, line)` returns (nullopt:
// the line is dropped); every line ends with a newline afterwards.
template <typename Fn>
std::string rewrite_lines(std::string_view text, Fn&& fn) {
  std::string rewritten;
  int number = 0;
  while (!text.empty()) {
    const std::size_t end = text.find('\n');
    const std::string_view line = text.substr(0, end);
    text = end == std::string_view::npos ? std::string_view{} : text.substr(end + 1);
    const std::optional<std::string_view> kept = fn(++number, line);
    if (!kept) continue;
    rewritten += *kept;
    rewritten += '\n';
  }
  return rewritten;
}

}  // namespace

Expected<AuthorizedClients, std::string> AuthorizedClients::parse(std::string_view text,
                                                                  const std::string& origin) {
  AuthorizedClients clients;
  auto error =
      for_each_entry(text, [&](int number, std::string_view line) -> std::optional<std::string> {
        auto key = parse_key_line(line);
        if (!key) return fmt::format("{}:{}: {}", origin, number, key.error());
        clients.keys_.push_back(TrustedKey{std::move(*key), {}, number});
        return std::nullopt;
      });
  if (error) return Unexpected{*error};
  return clients;
}

Expected<AuthorizedClients, std::string> AuthorizedClients::load(
    const std::filesystem::path& path) {
  auto content = read_small_file(path, kMaxTrustFile);
  if (!content) return Unexpected{content.error()};
  if (!*content) return AuthorizedClients{};
  return parse(**content, path.string());
}

const TrustedKey* AuthorizedClients::find(const PublicKey& key) const {
  for (const TrustedKey& k : keys_) {
    if (k.key.key == key) return &k;
  }
  return nullptr;
}

Expected<bool, std::string> authorize_client(const std::filesystem::path& path,
                                             const KeyLine& key) {
  auto clients = AuthorizedClients::load(path);
  if (!clients) return Unexpected{clients.error()};
  if (clients->find(key.key)) return false;
  if (path.has_parent_path()) {
    if (auto error = make_private_dir(path.parent_path())) return Unexpected{*error};
  }
  if (auto error = append_private_line(path, key.to_string())) return Unexpected{*error};
  return true;
}

Expected<std::vector<TrustedKey>, std::string> revoke_clients(const std::filesystem::path& path,
                                                              std::string_view who) {
  auto content = read_small_file(path, kMaxTrustFile);
  if (!content) return Unexpected{content.error()};
  const std::string text = content->value_or("");
  auto clients = AuthorizedClients::parse(text, path.string());
  if (!clients) return Unexpected{clients.error()};
  std::vector<TrustedKey> removed;
  for (const TrustedKey& k : clients->keys()) {
    if (k.key.key.fingerprint() == who || k.key.comment == who) removed.push_back(k);
  }
  if (removed.empty()) return removed;
  const std::string rewritten = rewrite_lines(
      text, [&](int number, std::string_view line) -> std::optional<std::string_view> {
        const bool gone = std::any_of(removed.begin(), removed.end(),
                                      [number](const TrustedKey& k) { return k.line == number; });
        if (gone) return std::nullopt;
        return line;
      });
  auto written = write_private_file(path, rewritten, false);
  if (!written) return Unexpected{written.error()};
  return removed;
}

Expected<KnownAgents, std::string> KnownAgents::parse(std::string_view text,
                                                      const std::string& origin) {
  KnownAgents known;
  auto error =
      for_each_entry(text, [&](int number, std::string_view line) -> std::optional<std::string> {
        const std::size_t blank = line.find_first_of(" \t");
        if (blank == std::string_view::npos) {
          return fmt::format("{}:{}: expected HOST:PORT and a key line after it", origin, number);
        }
        auto key = parse_key_line(line.substr(blank));
        if (!key) return fmt::format("{}:{}: {}", origin, number, key.error());
        known.agents_.push_back(
            TrustedKey{std::move(*key), std::string(line.substr(0, blank)), number});
        return std::nullopt;
      });
  if (error) return Unexpected{*error};
  return known;
}

Expected<KnownAgents, std::string> KnownAgents::load(const std::filesystem::path& path) {
  auto content = read_small_file(path, kMaxTrustFile);
  if (!content) return Unexpected{content.error()};
  if (!*content) return KnownAgents{};
  return parse(**content, path.string());
}

const TrustedKey* KnownAgents::find(std::string_view agent) const {
  for (const TrustedKey& k : agents_) {
    if (k.agent == agent) return &k;
  }
  return nullptr;
}

Expected<bool, std::string> pin_agent(const std::filesystem::path& path, const std::string& agent,
                                      const KeyLine& key, bool replace) {
  auto content = read_small_file(path, kMaxTrustFile);
  if (!content) return Unexpected{content.error()};
  const std::string text = content->value_or("");
  auto known = KnownAgents::parse(text, path.string());
  if (!known) return Unexpected{known.error()};
  const TrustedKey* pinned = known->find(agent);
  if (pinned && pinned->key.key == key.key) return false;
  if (pinned && !replace) {
    return Unexpected{fmt::format(
        "{} pins another key for {} ({}, line {}); the agent now presents {}. If the agent's "
        "key changed legitimately (it was reinstalled), pair again with --replace",
        path.string(), agent, pinned->key.key.fingerprint(), pinned->line, key.key.fingerprint())};
  }
  if (path.has_parent_path()) {
    if (auto error = make_private_dir(path.parent_path())) return Unexpected{*error};
  }
  const std::string entry = agent + " " + key.to_string();
  if (!pinned) {
    if (auto error = append_private_line(path, entry)) return Unexpected{*error};
    return true;
  }
  // Replace the old line, keep every other line as it was.
  const std::string rewritten = rewrite_lines(text, [&](int number, std::string_view line) {
    return std::optional<std::string_view>(number == pinned->line ? std::string_view(entry) : line);
  });
  auto written = write_private_file(path, rewritten, false);
  if (!written) return Unexpected{written.error()};
  return true;
}

}  // namespace usbnet::security
