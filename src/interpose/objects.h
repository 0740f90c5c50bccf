// Which pointers are the shim's own. The program hands the shim back pointers it got from
// either the shim or the real libusb (and the real library's internals call the shim's exports
// with its own pointers); these sets tell them apart.
#pragma once

#include <libusb.h>

#include <memory>
#include <mutex>
#include <new>
#include <optional>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "client/urb_tracker.h"

namespace usbnet::interpose {

class Context;
class AgentLink;
class RemoteDevice;
class RemoteHandle;

// A process-lifetime object: constructed on first use, never destroyed, so that nothing runs at
// exit while threads of the program (or of the shim) may still be using it.
template <typename T>
class Immortal {
 public:
  template <typename... Args>
  explicit Immortal(Args&&... args) {
    new (storage_) T(std::forward<Args>(args)...);
  }
  T& get() { return *std::launder(reinterpret_cast<T*>(storage_)); }

 private:
  alignas(T) unsigned char storage_[sizeof(T)];
};

template <typename T>
class PointerSet {
 public:
  // Held across fork() so that the child never inherits it locked by another thread.
  std::mutex& mutex() const { return mutex_; }

  void add(const T* p) {
    std::lock_guard lock(mutex_);
    set_.insert(p);
  }
  bool remove(const T* p) {
    std::lock_guard lock(mutex_);
    return set_.erase(p) > 0;
  }
  bool contains(const void* p) const {
    std::lock_guard lock(mutex_);
    return set_.contains(static_cast<const T*>(p));
  }

 private:
  mutable std::mutex mutex_;
  std::unordered_set<const T*> set_;
};

PointerSet<Context>& contexts();
PointerSet<RemoteDevice>& remote_devices();
PointerSet<RemoteHandle>& remote_handles();
// Memory the shim allocated for the program: device lists, pollfd arrays, descriptors.
PointerSet<void>& allocations();

// Transfers submitted to a remote device and not yet completed (the side table keyed by the
// transfer pointer: every transfer comes from the real allocator, whose private data must stay
// untouched).
struct RemoteTransfer {
  Context* context;
  std::shared_ptr<AgentLink> link;
  std::uint32_t trans_id = 0;
  bool cancelling = false;
  std::uint64_t submitted_ns = 0;
};

class TransferTable {
 public:
  std::mutex& mutex() const { return mutex_; }
  // Adds a transfer; false if it is already in flight.
  bool add(libusb_transfer* t, RemoteTransfer state);
  // Records the trans_id; returns true if a cancel was asked for before it was known.
  bool set_trans_id(libusb_transfer* t, std::uint32_t trans_id);
  // Takes the transfer out (it completed, or its submission failed).
  std::optional<RemoteTransfer> take(libusb_transfer* t);
  // Marks it cancelling; returns its state if it is in flight and was not already cancelling.
  std::optional<RemoteTransfer> start_cancel(libusb_transfer* t);
  bool contains(const libusb_transfer* t) const;

 private:
  mutable std::mutex mutex_;
  std::unordered_map<const libusb_transfer*, RemoteTransfer> transfers_;
};
TransferTable& remote_transfers();

// True in a child created by fork() after the shim had started talking to agents: the parent's
// connections belong to the parent, so the child's contexts offer no remote devices.
bool forked_child();
void note_agent_use();  // installs the fork handler, once
// Keeps an agent link alive for the rest of the process (a fork child must never destroy the
// parent's links: that would join threads that do not exist in the child).
void keep_forever(std::shared_ptr<AgentLink> link);

}  // namespace usbnet::interpose
