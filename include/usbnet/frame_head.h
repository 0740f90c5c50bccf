// Frame heads kept inline: encode_frame_head() is encode_frame() without an allocation for the
// head, for writers that send many small frames (usbnet's transport sends every frame this way).
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <iterator>
#include <vector>

#include "usbnet/messages.h"

namespace usbnet::wire {

// A byte string that lives inline up to 64 bytes, enough for the head of every message without
// isochronous packets (the largest, a URB_SUBMIT's, is 48 bytes), and on the heap beyond.
class FrameHead {
 public:
  static constexpr std::size_t kInline = 64;

  FrameHead() = default;
  FrameHead(const FrameHead& other) { assign(other.begin(), other.end()); }
  FrameHead& operator=(const FrameHead& other) {
    if (this != &other) assign(other.begin(), other.end());
    return *this;
  }
  FrameHead(FrameHead&& other) noexcept { take(other); }
  FrameHead& operator=(FrameHead&& other) noexcept {
    if (this != &other) take(other);
    return *this;
  }

  std::uint8_t* data() { return heap_.empty() ? inline_.data() : heap_.data(); }
  const std::uint8_t* data() const { return heap_.empty() ? inline_.data() : heap_.data(); }
  std::size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  std::uint8_t* begin() { return data(); }
  std::uint8_t* end() { return data() + size_; }
  const std::uint8_t* begin() const { return data(); }
  const std::uint8_t* end() const { return data() + size_; }

  void clear() {
    size_ = 0;
    heap_.clear();
  }
  void resize(std::size_t n) {
    reserve(n);
    size_ = n;
    if (!heap_.empty()) heap_.resize(std::max<std::size_t>(n, 1));
  }
  // Appends [first, last) at the end (the only position the encoder uses).
  template <typename It>
  void insert(const std::uint8_t* at, It first, It last) {
    (void)at;
    const auto n = static_cast<std::size_t>(std::distance(first, last));
    const std::size_t old = size_;
    resize(old + n);
    std::copy(first, last, data() + old);
  }
  template <typename It>
  void assign(It first, It last) {
    clear();
    insert(end(), first, last);
  }

 private:
  void reserve(std::size_t n) {
    if (n <= kInline && heap_.empty()) return;
    if (heap_.empty()) heap_.assign(inline_.begin(), inline_.begin() + size_);
    if (heap_.size() < n) heap_.resize(n);
  }
  void take(FrameHead& other) {
    size_ = other.size_;
    heap_ = std::move(other.heap_);
    if (heap_.empty())
      std::copy(other.inline_.begin(), other.inline_.begin() + size_, inline_.begin());
    other.size_ = 0;
    other.heap_.clear();
  }

  std::array<std::uint8_t, kInline> inline_;
  std::vector<std::uint8_t> heap_;  // in use once the head outgrows the inline bytes
  std::size_t size_ = 0;
};

// Encodes `message` like encode_frame(), into `head` (replacing its contents); returns the
// payload view, which follows the head on the wire.
ByteView encode_frame_head(const Message& message, FrameHead& head);

}  // namespace usbnet::wire
