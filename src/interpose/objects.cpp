#include "interpose/objects.h"

#include <pthread.h>

#include <atomic>

#include "common/log.h"

namespace usbnet::interpose {

PointerSet<Context>& contexts() {
  static Immortal<PointerSet<Context>> set;
  return set.get();
}
PointerSet<RemoteDevice>& remote_devices() {
  static Immortal<PointerSet<RemoteDevice>> set;
  return set.get();
}
PointerSet<RemoteHandle>& remote_handles() {
  static Immortal<PointerSet<RemoteHandle>> set;
  return set.get();
}
PointerSet<void>& allocations() {
  static Immortal<PointerSet<void>> set;
  return set.get();
}
TransferTable& remote_transfers() {
  static Immortal<TransferTable> table;
  return table.get();
}

bool TransferTable::add(libusb_transfer* t, RemoteTransfer state) {
  std::lock_guard lock(mutex_);
  return transfers_.emplace(t, std::move(state)).second;
}

bool TransferTable::set_trans_id(libusb_transfer* t, std::uint32_t trans_id) {
  std::lock_guard lock(mutex_);
  auto it = transfers_.find(t);
  if (it == transfers_.end()) return false;
  it->second.trans_id = trans_id;
  return it->second.cancelling;
}

std::optional<RemoteTransfer> TransferTable::take(libusb_transfer* t) {
  std::lock_guard lock(mutex_);
  auto node = transfers_.extract(t);
  if (node.empty()) return std::nullopt;
  return std::move(node.mapped());
}

std::optional<RemoteTransfer> TransferTable::start_cancel(libusb_transfer* t) {
  std::lock_guard lock(mutex_);
  auto it = transfers_.find(t);
  if (it == transfers_.end() || it->second.cancelling) return std::nullopt;
  it->second.cancelling = true;
  return it->second;
}

bool TransferTable::contains(const libusb_transfer* t) const {
  std::lock_guard lock(mutex_);
  return transfers_.contains(t);
}

namespace {

std::atomic<bool> in_forked_child{false};

// The process-wide locks another thread (an agent connection's) may hold: fork() happens only
// while the forking thread holds them all, so the child gets them unlocked.
void lock_all_for_fork() {
  log::lock_for_fork();
  contexts().mutex().lock();
  remote_devices().mutex().lock();
  remote_handles().mutex().lock();
  allocations().mutex().lock();
  remote_transfers().mutex().lock();
}

void unlock_all_after_fork() {
  remote_transfers().mutex().unlock();
  allocations().mutex().unlock();
  remote_handles().mutex().unlock();
  remote_devices().mutex().unlock();
  contexts().mutex().unlock();
  log::unlock_after_fork();
}

void on_fork_child() {
  unlock_all_after_fork();
  in_forked_child = true;
}

}  // namespace

void keep_forever(std::shared_ptr<AgentLink> link) {
  static Immortal<std::mutex> mutex;
  static Immortal<std::vector<std::shared_ptr<AgentLink>>> kept;
  std::lock_guard lock(mutex.get());
  kept.get().push_back(std::move(link));
}

bool forked_child() { return in_forked_child.load(std::memory_order_relaxed); }

void note_agent_use() {
  static std::once_flag once;
  std::call_once(
      once, [] { ::pthread_atfork(&lock_all_for_fork, &unlock_all_after_fork, &on_fork_child); });
}

}  // namespace usbnet::interpose
