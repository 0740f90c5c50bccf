#include "interpose/remote_transfer.h"

#include <algorithm>

#include "common/log.h"
#include "interpose/agent_link.h"
#include "interpose/context.h"
#include "interpose/real_libusb.h"
#include "interpose/remote_device.h"
#include "interpose/trace.h"
#include "interpose/urb_capture.h"

namespace usbnet::interpose {

namespace {

constexpr int kSetupSize = LIBUSB_CONTROL_SETUP_SIZE;  // (a size_t in libusb.h)

std::span<std::uint8_t> bytes(unsigned char* data, std::size_t n) {
  return {reinterpret_cast<std::uint8_t*>(data), n};
}

// The URB for a libusb transfer, and where its IN data goes; or a libusb error code.
int build_urb(const libusb_transfer* t, wire::UrbSubmit& u, std::span<std::uint8_t>& in) {
  if (t->length < 0) return LIBUSB_ERROR_INVALID_PARAM;
  u.flags = t->flags & wire::kKnownTransferFlags;
  u.timeout_ms = t->timeout;
  std::span<std::uint8_t> data;
  bool is_in = (t->endpoint & LIBUSB_ENDPOINT_IN) != 0;
  switch (t->type) {
    case LIBUSB_TRANSFER_TYPE_CONTROL: {
      if (t->length < kSetupSize || !t->buffer) return LIBUSB_ERROR_INVALID_PARAM;
      std::copy_n(t->buffer, LIBUSB_CONTROL_SETUP_SIZE, u.setup.begin());
      const std::uint16_t w_length = static_cast<std::uint16_t>(t->buffer[6] | (t->buffer[7] << 8));
      if (t->length - kSetupSize < int{w_length}) return LIBUSB_ERROR_INVALID_PARAM;
      u.type = wire::UrbType::Control;
      u.endpoint = 0;
      u.data_len = w_length;
      is_in = (t->buffer[0] & LIBUSB_ENDPOINT_IN) != 0;
      data = bytes(t->buffer + LIBUSB_CONTROL_SETUP_SIZE, w_length);
      break;
    }
    case LIBUSB_TRANSFER_TYPE_BULK:
    case LIBUSB_TRANSFER_TYPE_INTERRUPT:
      if ((t->endpoint & 0x0f) == 0 || (t->endpoint & 0x70) != 0) {
        return LIBUSB_ERROR_INVALID_PARAM;
      }
      u.type =
          t->type == LIBUSB_TRANSFER_TYPE_BULK ? wire::UrbType::Bulk : wire::UrbType::Interrupt;
      u.endpoint = t->endpoint;
      u.data_len = static_cast<std::uint32_t>(t->length);
      data = bytes(t->buffer, static_cast<std::size_t>(t->length));
      break;
    case LIBUSB_TRANSFER_TYPE_ISOCHRONOUS: {
      if (t->num_iso_packets <= 0 || t->num_iso_packets > wire::kMaxIsoPackets ||
          (t->endpoint & 0x0f) == 0) {
        return LIBUSB_ERROR_INVALID_PARAM;
      }
      std::uint64_t total = 0;
      for (int i = 0; i < t->num_iso_packets; ++i) {
        u.iso_lengths.push_back(t->iso_packet_desc[i].length);
        total += t->iso_packet_desc[i].length;
      }
      if (total > static_cast<std::uint64_t>(t->length)) return LIBUSB_ERROR_INVALID_PARAM;
      u.type = wire::UrbType::Iso;
      u.endpoint = t->endpoint;
      u.data_len = static_cast<std::uint32_t>(total);
      data = bytes(t->buffer, total);
      break;
    }
    default:  // bulk streams
      return LIBUSB_ERROR_NOT_SUPPORTED;
  }
  if (u.data_len > wire::kMaxTransferLength) return LIBUSB_ERROR_INVALID_PARAM;
  if (is_in) {
    in = data;
  } else {
    u.payload = data;
  }
  return LIBUSB_SUCCESS;
}

}  // namespace

namespace {

// The agent's answer, written into the transfer as a libusb backend does before the callback.
void record_outcome(libusb_transfer* t, const client::UrbResult& result,
                    std::uint64_t submitted_ns) {
  auto status = static_cast<libusb_transfer_status>(result.status);
  const int requested =
      t->type == LIBUSB_TRANSFER_TYPE_CONTROL ? t->length - kSetupSize : t->length;
  const int actual = static_cast<int>(
      std::min<std::uint64_t>(result.actual_length, static_cast<std::uint64_t>(requested)));
  if (t->type == LIBUSB_TRANSFER_TYPE_ISOCHRONOUS) {
    for (int i = 0; i < t->num_iso_packets; ++i) {
      const bool known = static_cast<std::size_t>(i) < result.iso.size();
      t->iso_packet_desc[i].status =
          known ? static_cast<libusb_transfer_status>(result.iso[i].status) : status;
      t->iso_packet_desc[i].actual_length = known ? result.iso[i].actual_length : 0;
    }
  }
  // As libusb's core does for every backend.
  if (status == LIBUSB_TRANSFER_COMPLETED && (t->flags & LIBUSB_TRANSFER_SHORT_NOT_OK) &&
      actual != requested) {
    status = LIBUSB_TRANSFER_ERROR;
  }
  t->status = status;
  t->actual_length = actual;
  if (capturing()) {
    const int skip = t->type == LIBUSB_TRANSFER_TYPE_CONTROL ? kSetupSize : 0;
    capture_completion(t, result.status, result.actual_length, result.iso,
                       wire::ByteView(t->buffer + skip, static_cast<std::size_t>(requested)));
  }
  if (tracing()) {
    RemoteHandle* handle = RemoteHandle::from(t->dev_handle);
    trace_transfer(result.trans_id, t, handle ? handle->device().get_bus_number() : 0,
                   handle ? handle->device().info().device_address : 0, submitted_ns,
                   monotonic_ns());
  }
}

}  // namespace

int RemoteHandle::submit_transfer(libusb_transfer* t) {
  if (device_.gone()) return LIBUSB_ERROR_NO_DEVICE;
  wire::UrbSubmit urb;
  std::span<std::uint8_t> in;
  if (const int r = build_urb(t, urb, in); r != LIBUSB_SUCCESS) return r;
  client::AgentClient& client = device_.link().client();
  if (urb.type == wire::UrbType::Iso && !(client.agent_capabilities() & wire::kCapIso)) {
    return LIBUSB_ERROR_NOT_SUPPORTED;
  }
  urb.handle = id_;
  capture_submission(t, device_, urb);
  const std::uint64_t submitted_ns = tracing() ? monotonic_ns() : 0;
  auto submitted = client.submit(std::move(urb), in, t,
                                 [lifeline = device_.context().events().lifeline(), t,
                                  submitted_ns](const client::UrbResult& result) {
                                   // Dropped if the context is gone (a program that exits with
                                   // transfers in flight).
                                   lifeline->post_completion(
                                       t, [&] { record_outcome(t, result, submitted_ns); });
                                 });
  if (!submitted) {
    capture_submission_error(t, submitted.error());
    return submitted.error();
  }
  return LIBUSB_SUCCESS;
}

int RemoteHandle::cancel_transfer(libusb_transfer* t) {
  return device_.link().client().cancel(t) ? LIBUSB_SUCCESS : LIBUSB_ERROR_NOT_FOUND;
}

void RemoteHandle::free_transfer(libusb_transfer* t) {
  client::AgentClient& client = device_.link().client();
  if (client.in_flight(t)) {
    log::warn("a transfer was freed while in flight on a remote device; its completion is lost");
    client.forget(t);
  }
  device_.context().events().drop_completion(t);
  real().libusb_free_transfer(t);  // it came from the real allocator
}

void run_transfer_callback(libusb_transfer* t) {
  const std::uint8_t flags = t->flags;
  if (t->callback) t->callback(t);
  // The transfer may have been freed or resubmitted by the callback.
  if (flags & LIBUSB_TRANSFER_FREE_TRANSFER) libusb_free_transfer(t);
}

}  // namespace usbnet::interpose
