#include "security/paths.h"

#include <pwd.h>
#include <unistd.h>

#include <cstdlib>

namespace usbnet::security {

namespace fs = std::filesystem;

namespace {

std::string env(const char* name) {
  const char* value = std::getenv(name);
  return value ? value : "";
}

struct Account {
  std::string name;
  std::string dir;
};

// This process's user, without getpwuid's static buffer (the shim runs inside other programs).
Account account() {
  passwd entry{};
  passwd* found = nullptr;
  char buffer[4096];
  if (::getpwuid_r(::geteuid(), &entry, buffer, sizeof buffer, &found) != 0 || !found) return {};
  return {found->pw_name ? found->pw_name : "", found->pw_dir ? found->pw_dir : ""};
}

fs::path home_dir() {
  if (std::string home = env("HOME"); !home.empty()) return home;
  return account().dir.empty() ? fs::path("/") : fs::path(account().dir);
}

}  // namespace

fs::path default_agent_state_dir() {
  // systemd may name several, separated by colons: the first is the service's own.
  if (std::string state = env("STATE_DIRECTORY"); !state.empty()) {
    return state.substr(0, state.find(':'));
  }
  if (::geteuid() == 0) return "/var/lib/usbnet";
  if (std::string xdg = env("XDG_STATE_HOME"); !xdg.empty() && xdg.front() == '/') {
    return fs::path(xdg) / "usbnet-agent";
  }
  return home_dir() / ".local/state/usbnet-agent";
}

fs::path client_config_dir() {
  if (std::string xdg = env("XDG_CONFIG_HOME"); !xdg.empty() && xdg.front() == '/') {
    return fs::path(xdg) / "usbnet";
  }
  return home_dir() / ".config/usbnet";
}

std::string user_at_host(const std::string& user_fallback) {
  std::string user = user_fallback;
  if (std::string name = account().name; !name.empty()) user = name;
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) != 0) host[0] = '\0';
  return host[0] ? user + "@" + host : user;
}

}  // namespace usbnet::security
