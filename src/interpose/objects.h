// Which pointers are the shim's own. The program hands the shim back pointers it got from
// either the shim or the real libusb (and the real library's internals call the shim's exports
// with its own pointers); these sets tell them apart.
#pragma once

#include <libusb.h>

#include <mutex>
#include <new>
#include <unordered_set>
#include <utility>

namespace usbnet::interpose {

class Context;
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

}  // namespace usbnet::interpose
