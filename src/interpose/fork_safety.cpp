#include "interpose/fork_safety.h"

#include <pthread.h>

#include <atomic>
#include <mutex>
#include <vector>

#include "common/log.h"
#include "interpose/objects.h"

namespace usbnet::interpose {

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
}

void unlock_all_after_fork() {
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
