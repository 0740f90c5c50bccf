#include "security/key_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <fmt/format.h>

namespace usbnet::security {

namespace fs = std::filesystem;

namespace {

constexpr std::size_t kMaxKeyFile = 64 * 1024;

std::string errno_text(int error) { return std::strerror(error); }

// When root writes into a directory that belongs to someone else, the file is theirs.
void give_to_directory_owner(int fd, const fs::path& path) {
  if (::geteuid() != 0) return;
  struct stat dir {};
  const fs::path parent = path.has_parent_path() ? path.parent_path() : fs::path(".");
  if (::stat(parent.c_str(), &dir) != 0 || dir.st_uid == 0) return;
  if (::fchown(fd, dir.st_uid, dir.st_gid) != 0) {
    // Best effort: the file stays root's, which the service cannot read; say nothing here, the
    // service reports the file it cannot read.
  }
}

bool write_all(int fd, std::string_view content) {
  while (!content.empty()) {
    const ssize_t n = ::write(fd, content.data(), content.size());
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    content.remove_prefix(static_cast<std::size_t>(n));
  }
  return true;
}

}  // namespace

Expected<std::optional<std::string>, std::string> read_small_file(const fs::path& path,
                                                                  std::size_t max_bytes) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return std::optional<std::string>{};
    return Unexpected{fmt::format("cannot read {}: {}", path.string(), errno_text(errno))};
  }
  std::string content;
  char buffer[4096];
  for (;;) {
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      const int error = errno;
      ::close(fd);
      return Unexpected{fmt::format("cannot read {}: {}", path.string(), errno_text(error))};
    }
    if (n == 0) break;
    content.append(buffer, static_cast<std::size_t>(n));
    if (content.size() > max_bytes) {
      ::close(fd);
      return Unexpected{
          fmt::format("{} is larger than {} bytes: not a usbnet file", path.string(), max_bytes)};
    }
  }
  ::close(fd);
  return std::optional<std::string>{std::move(content)};
}

std::optional<std::string> make_private_dir(const fs::path& dir) {
  std::error_code ec;
  if (fs::is_directory(dir, ec)) return std::nullopt;
  // Parents as usual, the directory itself private.
  if (dir.has_parent_path()) fs::create_directories(dir.parent_path(), ec);
  if (::mkdir(dir.c_str(), 0700) != 0 && errno != EEXIST) {
    return fmt::format("cannot create the directory {}: {}", dir.string(), errno_text(errno));
  }
  return std::nullopt;
}

Expected<bool, std::string> write_private_file(const fs::path& path, std::string_view content,
                                               bool exclusive) {
  std::string pattern = path.string() + ".tmpXXXXXX";
  const int fd = ::mkostemp(pattern.data(), O_CLOEXEC);  // mode 0600, a name of its own
  const fs::path temporary = pattern;
  if (fd < 0) {
    return Unexpected{fmt::format("cannot write {}: {}", path.string(), errno_text(errno))};
  }
  give_to_directory_owner(fd, path);
  const bool written = write_all(fd, content) && ::fsync(fd) == 0;
  const int write_error = errno;
  ::close(fd);
  if (!written) {
    ::unlink(temporary.c_str());
    return Unexpected{fmt::format("cannot write {}: {}", path.string(), errno_text(write_error))};
  }
  if (exclusive) {
    // link() fails if the name exists: the first process to get there wins.
    const bool linked = ::link(temporary.c_str(), path.c_str()) == 0;
    const int error = errno;
    ::unlink(temporary.c_str());
    if (linked) return true;
    if (error == EEXIST) return false;
    return Unexpected{fmt::format("cannot create {}: {}", path.string(), errno_text(error))};
  }
  if (::rename(temporary.c_str(), path.c_str()) != 0) {
    const int error = errno;
    ::unlink(temporary.c_str());
    return Unexpected{fmt::format("cannot write {}: {}", path.string(), errno_text(error))};
  }
  return true;
}

std::optional<std::string> append_private_line(const fs::path& path, std::string_view line) {
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
  if (fd < 0) return fmt::format("cannot write {}: {}", path.string(), errno_text(errno));
  give_to_directory_owner(fd, path);
  // A file that does not end with a newline gets one first, so the new line stays a line.
  bool needs_newline = false;
  struct stat st {};
  if (::fstat(fd, &st) == 0 && st.st_size > 0) {
    char last = '\n';
    if (::pread(fd, &last, 1, st.st_size - 1) == 1) needs_newline = last != '\n';
  }
  std::string text = needs_newline ? "\n" : "";
  text.append(line);
  text += '\n';
  const bool written = write_all(fd, text);
  const int error = errno;
  ::close(fd);
  if (!written) return fmt::format("cannot write {}: {}", path.string(), errno_text(error));
  return std::nullopt;
}

Expected<KeyPair, std::string> load_key(const fs::path& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && (st.st_mode & 077) != 0) {
    return Unexpected{fmt::format(
        "the permissions {:04o} of {} let others read the private key: refusing it (chmod 600 "
        "{})",
        st.st_mode & 07777, path.string(), path.string())};
  }
  auto content = read_small_file(path, kMaxKeyFile);
  if (!content) return Unexpected{content.error()};
  if (!*content) return Unexpected{fmt::format("{} does not exist", path.string())};
  return KeyPair::from_pem(**content, path.string());
}

Expected<LoadedKey, std::string> load_or_create_key(const fs::path& path,
                                                    std::string_view comment) {
  std::error_code ec;
  if (!fs::exists(path, ec)) {
    if (path.has_parent_path()) {
      if (auto error = make_private_dir(path.parent_path())) return Unexpected{*error};
    }
    auto key = KeyPair::generate();
    if (!key) return Unexpected{key.error()};
    auto won = write_private_file(path, key->private_pem(), true);
    if (!won) return Unexpected{won.error()};
    if (*won) {
      const KeyLine line{key->public_key(), std::string(comment)};
      // The public line is a convenience for people: a failure to write it is not fatal.
      (void)write_private_file(path.string() + ".pub", line.to_string() + "\n", false);
      return LoadedKey{std::move(*key), true};
    }
    // Another process created it meanwhile: use theirs.
  }
  auto key = load_key(path);
  if (!key) return Unexpected{key.error()};
  return LoadedKey{std::move(*key), false};
}

}  // namespace usbnet::security
