// A first-in first-out queue of frames that keeps its storage. Frames come and go at a high rate
// (one or two per transfer), and a std::deque allocates and frees a block every few of them.
#pragma once

#include <algorithm>
#include <cstddef>
#include <utility>
#include <vector>

namespace usbnet::transport {

template <typename T>
class FrameQueue {
 public:
  bool empty() const { return head_ == items_.size(); }
  std::size_t size() const { return items_.size() - head_; }
  T& front() { return items_[head_]; }
  auto begin() { return items_.begin() + static_cast<std::ptrdiff_t>(head_); }
  auto end() { return items_.end(); }
  auto begin() const { return items_.begin() + static_cast<std::ptrdiff_t>(head_); }
  auto end() const { return items_.end(); }

  void push_back(T&& item) {
    // A queue that never empties (a long stream of pieces) drops the slots it has passed.
    if (head_ > 64 && head_ > items_.size() / 2) {
      items_.erase(items_.begin(), begin());
      head_ = 0;
    }
    items_.push_back(std::move(item));
  }
  void push_front(T&& item) {
    if (head_ > 0) {
      items_[--head_] = std::move(item);
    } else {
      items_.insert(items_.begin(), std::move(item));
    }
  }
  // The slot is reset at once: a frame's keepalive (a transfer's buffer) is released when the
  // frame is written, not when the slot is reused.
  void pop_front() {
    items_[head_++] = T{};
    if (head_ == items_.size()) clear();
  }
  void clear() {
    items_.clear();
    head_ = 0;
  }
  template <typename Predicate>
  std::size_t erase_if(Predicate predicate) {
    const auto last = std::remove_if(begin(), end(), predicate);
    const auto n = static_cast<std::size_t>(end() - last);
    items_.erase(last, items_.end());
    if (empty()) clear();
    return n;
  }

 private:
  std::vector<T> items_;
  std::size_t head_ = 0;
};

}  // namespace usbnet::transport
