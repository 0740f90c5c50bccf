// Large URB payloads travel in pieces so that a small transfer never waits behind a big one.
//
// A URB_SUBMIT (OUT data) or URB_COMPLETE (IN data) carries at most one piece inline; the rest
// follows in URB_DATA frames, each at most `piece_size` bytes, in order, which the sender may
// interleave with any other frame. PieceSplitter plans the pieces on the sending side;
// PieceAssembler checks them on the receiving side. Neither copies payload: the receiver copies
// each piece to its final place itself.
#pragma once

#include <cstdint>
#include <optional>
#include <unordered_map>

#include "usbnet/expected.h"
#include "usbnet/messages.h"

namespace usbnet::wire {

// Clamps a configured piece size into [kMinPieceSize, kMaxPieceSize].
std::uint32_t clamp_piece_size(std::uint64_t requested);

// The sending side: which bytes of a payload go where.
class PieceSplitter {
 public:
  PieceSplitter(ByteView payload, std::uint32_t piece_size);

  // The part that travels inside URB_SUBMIT / URB_COMPLETE.
  ByteView inline_part() const;
  bool done() const { return next_offset_ >= payload_.size(); }
  // The next URB_DATA piece for `trans_id`; advances. Only valid while !done().
  UrbData next_piece(std::uint32_t trans_id);
  std::size_t remaining() const { return payload_.size() - next_offset_; }

 private:
  ByteView payload_;
  std::uint32_t piece_size_;
  std::size_t next_offset_;
};

// The receiving side: tracks every transfer whose payload is still arriving.
class PieceAssembler {
 public:
  static constexpr std::size_t kDefaultMaxPending = 8192;
  explicit PieceAssembler(std::size_t max_pending = kDefaultMaxPending);

  // A URB_SUBMIT or URB_COMPLETE announced `total` payload bytes and carried `inline_length` of
  // them. Returns whether more pieces must follow (false: the payload is already whole).
  Expected<bool, WireError> begin(std::uint32_t trans_id, std::uint32_t total,
                                  std::uint32_t inline_length);
  // A URB_DATA piece: checks it continues its transfer exactly. Returns whether the payload is
  // now whole (the transfer is then forgotten).
  Expected<bool, WireError> accept(const UrbData& piece);
  // Stops expecting pieces for a transfer (cancelled, or its connection side gave up on it).
  void forget(std::uint32_t trans_id);
  bool expecting(std::uint32_t trans_id) const { return pending_.contains(trans_id); }
  std::size_t pending() const { return pending_.size(); }

 private:
  struct Progress {
    std::uint32_t total;
    std::uint32_t received;
  };
  std::size_t max_pending_;
  std::unordered_map<std::uint32_t, Progress> pending_;
};

}  // namespace usbnet::wire
