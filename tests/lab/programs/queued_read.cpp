#include "queued_read.h"

#include <string>

namespace lab {

namespace {

constexpr unsigned kTimeoutMs = 20000;  // as the synchronous commands (bot.cpp)

void LIBUSB_CALL on_done(libusb_transfer* t) {
  static_cast<QueuedRead::Stage*>(t->user_data)->done = true;
}

}  // namespace

QueuedRead::QueuedRead(BulkOnly& bot, libusb_context* ctx, std::uint32_t chunk, int pieces)
    : bot_(bot), ctx_(ctx) {
  if (pieces < 1 || pieces > 64 || chunk % static_cast<std::uint32_t>(pieces) != 0 ||
      (chunk / static_cast<std::uint32_t>(pieces)) % 1024 != 0) {
    fail("the data stage does not split into " + std::to_string(pieces) +
         " transfers of whole KiB");
  }
  piece_ = chunk / static_cast<std::uint32_t>(pieces);
  stages_.resize(static_cast<std::size_t>(pieces) + 2);
  for (Stage& s : stages_) s.transfer = libusb_alloc_transfer(0);
}

QueuedRead::~QueuedRead() {
  for (Stage& s : stages_) libusb_free_transfer(s.transfer);
}

void QueuedRead::read10(std::uint32_t lba, std::uint16_t blocks, std::uint32_t block_size,
                        unsigned char* into) {
  Interface& usb = bot_.interface();
  libusb_device_handle* h = usb.handle.get();
  const std::uint32_t length = blocks * block_size;
  if (length != piece_ * (stages_.size() - 2)) fail("READ(10): not the size the pieces make");
  const std::uint32_t tag = bot_.wrap(BulkOnly::read10_cdb(lba, blocks), length, true, cbw_);
  libusb_fill_bulk_transfer(stages_.front().transfer, h, usb.bulk_out, cbw_, sizeof cbw_, &on_done,
                            &stages_.front(), kTimeoutMs);
  for (std::size_t i = 1; i + 1 < stages_.size(); ++i) {
    libusb_fill_bulk_transfer(stages_[i].transfer, h, usb.bulk_in, into + (i - 1) * piece_,
                              static_cast<int>(piece_), &on_done, &stages_[i], kTimeoutMs);
  }
  libusb_fill_bulk_transfer(stages_.back().transfer, h, usb.bulk_in, csw_, sizeof csw_, &on_done,
                            &stages_.back(), kTimeoutMs);
  for (Stage& s : stages_) s.done = false;
  for (std::size_t i = 0; i + 1 < stages_.size(); ++i) {
    check(libusb_submit_transfer(stages_[i].transfer), "submit");
  }
  for (std::size_t i = 0; i + 1 < stages_.size(); ++i) {
    while (!stages_[i].done) check(libusb_handle_events(ctx_), "handle events");
  }
  check(libusb_submit_transfer(stages_.back().transfer), "submit");
  while (!stages_.back().done) check(libusb_handle_events(ctx_), "handle events");
  for (std::size_t i = 0; i < stages_.size(); ++i) {
    const libusb_transfer* t = stages_[i].transfer;
    const bool whole = i + 1 == stages_.size() || t->actual_length == t->length;
    if (t->status != LIBUSB_TRANSFER_COMPLETED || !whole) {
      fail("READ(10): stage " + std::to_string(i) + " ended with status " +
           std::to_string(t->status) + " after " + std::to_string(t->actual_length) + " of " +
           std::to_string(t->length) + " bytes");
    }
  }
  int status = 0;
  if (!BulkOnly::unwrap(csw_, stages_.back().transfer->actual_length, tag, status) || status != 0) {
    fail("READ(10): no valid CSW, or the command failed (status " + std::to_string(status) + ")");
  }
}

}  // namespace lab
