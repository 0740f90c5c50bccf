// Payload pieces: how a sender splits, how a receiver checks.
#include <catch2/catch.hpp>

#include "usbnet/wire.h"

using namespace usbnet::wire;

TEST_CASE("piece size is clamped to the protocol's range") {
  CHECK(clamp_piece_size(0) == kMinPieceSize);
  CHECK(clamp_piece_size(100000) == 100000);
  CHECK(clamp_piece_size(std::uint64_t{1} << 40) == kMaxPieceSize);
}

TEST_CASE("a payload within one piece travels inline, whole") {
  Bytes payload(1000, 7);
  PieceSplitter splitter(payload, 4096);
  CHECK(splitter.inline_part().size() == 1000);
  CHECK(splitter.done());
}

TEST_CASE("a large payload: first piece inline, the rest in order, the last one short") {
  Bytes payload(10 * 1024 + 5);
  for (std::size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<std::uint8_t>(i);
  PieceSplitter splitter(payload, 4096);
  CHECK(splitter.inline_part().size() == 4096);
  Bytes rebuilt(splitter.inline_part().begin(), splitter.inline_part().end());
  std::vector<std::size_t> sizes;
  while (!splitter.done()) {
    const UrbData piece = splitter.next_piece(9);
    CHECK(piece.trans_id == 9);
    CHECK(piece.offset == rebuilt.size());
    sizes.push_back(piece.payload.size());
    rebuilt.insert(rebuilt.end(), piece.payload.begin(), piece.payload.end());
  }
  CHECK(sizes == std::vector<std::size_t>{4096, 2048 + 5});
  CHECK(rebuilt == payload);
}

TEST_CASE("the assembler accepts pieces that continue their transfer exactly") {
  PieceAssembler assembler;
  Bytes chunk(100);
  REQUIRE(assembler.begin(5, 250, 100).value() == true);
  CHECK(assembler.expecting(5));
  CHECK(assembler.accept(UrbData{5, 100, chunk}).value() == false);
  CHECK(assembler.accept(UrbData{5, 200, ByteView(chunk).first(50)}).value() == true);
  CHECK_FALSE(assembler.expecting(5));
  CHECK(assembler.pending() == 0);
}

TEST_CASE("a payload that arrived whole is not tracked") {
  PieceAssembler assembler;
  CHECK(assembler.begin(5, 10, 10).value() == false);
  CHECK(assembler.begin(6, 0, 0).value() == false);
  CHECK(assembler.pending() == 0);
}

TEST_CASE("pieces that do not fit their transfer") {
  PieceAssembler assembler;
  Bytes chunk(100);
  REQUIRE(assembler.begin(5, 250, 100));

  SECTION("unknown transfer") {
    CHECK(assembler.accept(UrbData{6, 100, chunk}).error() == WireError::UnknownTransfer);
  }
  SECTION("a gap") {
    CHECK(assembler.accept(UrbData{5, 101, chunk}).error() == WireError::PieceOutOfOrder);
  }
  SECTION("a repeat") {
    CHECK(assembler.accept(UrbData{5, 0, chunk}).error() == WireError::PieceOutOfOrder);
  }
  SECTION("past the end") {
    REQUIRE(assembler.accept(UrbData{5, 100, chunk}));
    CHECK(assembler.accept(UrbData{5, 200, chunk}).error() == WireError::PieceOverflow);
  }
  SECTION("a trans_id reused while incomplete") {
    CHECK(assembler.begin(5, 10, 1).error() == WireError::DuplicateTransfer);
  }
  SECTION("inline part larger than the total") {
    CHECK(assembler.begin(7, 10, 11).error() == WireError::PayloadTooLarge);
  }
  SECTION("forgotten transfers take no more pieces") {
    assembler.forget(5);
    CHECK(assembler.accept(UrbData{5, 100, chunk}).error() == WireError::UnknownTransfer);
  }
}

TEST_CASE("the assembler bounds how many transfers may wait for pieces") {
  PieceAssembler assembler(3);
  for (std::uint32_t id = 0; id < 3; ++id) REQUIRE(assembler.begin(id, 10, 1));
  CHECK(assembler.begin(3, 10, 1).error() == WireError::TooManyPending);
  CHECK(assembler.begin(4, 10, 10).value() == false);  // whole payloads need no slot
}
