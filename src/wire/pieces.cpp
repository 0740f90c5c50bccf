// Splitting payloads into pieces and checking their reassembly.
#include <algorithm>

#include "usbnet/pieces.h"

namespace usbnet::wire {

std::uint32_t clamp_piece_size(std::uint64_t requested) {
  return static_cast<std::uint32_t>(
      std::clamp<std::uint64_t>(requested, kMinPieceSize, kMaxPieceSize));
}

PieceSplitter::PieceSplitter(ByteView payload, std::uint32_t piece_size)
    : payload_(payload),
      piece_size_(clamp_piece_size(piece_size)),
      next_offset_(std::min<std::size_t>(payload.size(), piece_size_)) {}

ByteView PieceSplitter::inline_part() const {
  return payload_.first(std::min<std::size_t>(payload_.size(), piece_size_));
}

UrbData PieceSplitter::next_piece(std::uint32_t trans_id) {
  const std::size_t length = std::min<std::size_t>(piece_size_, remaining());
  UrbData piece{trans_id, static_cast<std::uint32_t>(next_offset_),
                payload_.subspan(next_offset_, length)};
  next_offset_ += length;
  return piece;
}

PieceAssembler::PieceAssembler(std::size_t max_pending) : max_pending_(max_pending) {}

Expected<bool, WireError> PieceAssembler::begin(std::uint32_t trans_id, std::uint32_t total,
                                                std::uint32_t inline_length) {
  if (inline_length > total) return Unexpected{WireError::PayloadTooLarge};
  if (pending_.contains(trans_id)) return Unexpected{WireError::DuplicateTransfer};
  if (inline_length == total) return false;
  if (pending_.size() >= max_pending_) return Unexpected{WireError::TooManyPending};
  pending_.emplace(trans_id, Progress{total, inline_length});
  return true;
}

Expected<bool, WireError> PieceAssembler::accept(const UrbData& piece) {
  auto it = pending_.find(piece.trans_id);
  if (it == pending_.end()) return Unexpected{WireError::UnknownTransfer};
  Progress& progress = it->second;
  if (piece.offset != progress.received) return Unexpected{WireError::PieceOutOfOrder};
  if (piece.payload.size() > progress.total - progress.received) {
    return Unexpected{WireError::PieceOverflow};
  }
  progress.received += static_cast<std::uint32_t>(piece.payload.size());
  if (progress.received < progress.total) return false;
  pending_.erase(it);
  return true;
}

void PieceAssembler::forget(std::uint32_t trans_id) { pending_.erase(trans_id); }

}  // namespace usbnet::wire
