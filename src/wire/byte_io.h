// Bounds-checked reading and appending of packed layouts and raw bytes.
#pragma once

#include <cstring>
#include <optional>
#include <type_traits>

#include "usbnet/messages.h"

namespace usbnet::wire::detail {

template <typename Layout>
concept PackedLayout = std::is_trivially_copyable_v<Layout> && alignof(Layout) == 1;

class ByteReader {
 public:
  explicit ByteReader(ByteView bytes) : bytes_(bytes) {}

  std::size_t remaining() const { return bytes_.size() - offset_; }

  template <PackedLayout Layout>
  std::optional<Layout> take() {
    if (remaining() < sizeof(Layout)) return std::nullopt;
    Layout layout;
    std::memcpy(&layout, bytes_.data() + offset_, sizeof(Layout));
    offset_ += sizeof(Layout);
    return layout;
  }

  // A view of the next `n` bytes, or nullopt if fewer remain.
  std::optional<ByteView> take_bytes(std::size_t n) {
    if (remaining() < n) return std::nullopt;
    ByteView view = bytes_.subspan(offset_, n);
    offset_ += n;
    return view;
  }

  ByteView take_rest() {
    ByteView view = bytes_.subspan(offset_);
    offset_ = bytes_.size();
    return view;
  }

 private:
  ByteView bytes_;
  std::size_t offset_ = 0;
};

// `Out` is a contiguous byte container: Bytes, or a frame head kept inline.
template <PackedLayout Layout, typename Out>
void append(Out& out, const Layout& layout) {
  const auto* p = reinterpret_cast<const std::uint8_t*>(&layout);
  out.insert(out.end(), p, p + sizeof(Layout));
}

template <typename Out>
void append_bytes(Out& out, ByteView bytes) {
  out.insert(out.end(), bytes.begin(), bytes.end());
}

inline le16 make_le16(std::uint16_t v) {
  le16 f;
  f.set(v);
  return f;
}
inline le32 make_le32(std::uint32_t v) {
  le32 f;
  f.set(v);
  return f;
}
inline sle32 make_sle32(std::int32_t v) {
  sle32 f;
  f.set(v);
  return f;
}

}  // namespace usbnet::wire::detail
