#include "interpose/remote_transfer.h"

#include <array>
#include <cstring>
#include <numeric>
#include <vector>

#include "common/log.h"
#include "interpose/agent_link.h"
#include "interpose/context.h"
#include "interpose/objects.h"
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

int submit_remote_transfer(RemoteHandle& handle, libusb_transfer* t) {
  RemoteDevice& device = handle.device();
  if (device.gone()) return LIBUSB_ERROR_NO_DEVICE;
  wire::UrbSubmit urb;
  std::span<std::uint8_t> in;
  if (const int r = build_urb(t, urb, in); r != LIBUSB_SUCCESS) return r;
  AgentLink& link = device.link();
  if (urb.type == wire::UrbType::Iso && !(link.client().agent_capabilities() & wire::kCapIso)) {
    return LIBUSB_ERROR_NOT_SUPPORTED;
  }
  urb.handle = handle.id();
  Context* context = &device.context();
  if (!remote_transfers().add(
          t, RemoteTransfer{context, device.link_ptr(), 0, false, monotonic_ns()})) {
    return LIBUSB_ERROR_BUSY;  // already in flight
  }
  capture_submission(t, device, urb);
  auto submitted = link.client().submit(
      std::move(urb), in, [lifeline = context->lifeline(), t](const client::UrbResult& result) {
        lifeline->post_completion(t, result);
      });
  if (!submitted) {
    remote_transfers().take(t);
    capture_submission_error(t, submitted.error());
    return submitted.error();
  }
  // A cancel that came before the trans_id was known is carried out now.
  if (remote_transfers().set_trans_id(t, *submitted)) link.client().cancel(*submitted);
  return LIBUSB_SUCCESS;
}

int cancel_remote_transfer(libusb_transfer* t) {
  auto state = remote_transfers().start_cancel(t);
  if (!state) return LIBUSB_ERROR_NOT_FOUND;
  if (state->trans_id != 0) state->link->client().cancel(state->trans_id);
  return LIBUSB_SUCCESS;
}

bool is_remote_transfer_in_flight(const libusb_transfer* t) {
  return remote_transfers().contains(t);
}

void complete_remote_transfer(libusb_transfer* t, const client::UrbResult& result) {
  auto state = remote_transfers().take(t);
  if (!state) {
    log::error("a completion for a transfer that is not in flight was dropped");
    return;
  }
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
    trace_transfer(state->trans_id, t, handle ? handle->device().bus_number() : 0,
                   handle ? handle->device().info().device_address : 0, state->submitted_ns,
                   monotonic_ns());
  }
  const std::uint8_t flags = t->flags;
  if (t->callback) t->callback(t);
  // The transfer may have been freed or resubmitted by the callback.
  if (flags & LIBUSB_TRANSFER_FREE_TRANSFER) libusb_free_transfer(t);
}

// ---- the synchronous API ---------------------------------------------------------------
//
// libusb builds its synchronous calls on the asynchronous API (a transfer, a callback, event
// handling until it has run). Here they go to the agent client directly: no libusb_transfer,
// no entry in the transfer table, no trip through the event queue, and the caller's buffer is
// the URB's (the IN data lands in it). The waiting is libusb's: the caller handles the
// context's events (other transfers' callbacks run in it) until the answer has come.

namespace {

// Where the answer goes; it lives on the caller's stack until the answer has come.
struct SyncWait {
  Context* context;
  std::shared_ptr<Context::Lifeline> lifeline;
  client::UrbResult result;
  int completed = 0;
};

int status_to_error(libusb_transfer_status status) {
  switch (status) {
    case LIBUSB_TRANSFER_COMPLETED:
      return LIBUSB_SUCCESS;
    case LIBUSB_TRANSFER_TIMED_OUT:
      return LIBUSB_ERROR_TIMEOUT;
    case LIBUSB_TRANSFER_STALL:
      return LIBUSB_ERROR_PIPE;
    case LIBUSB_TRANSFER_NO_DEVICE:
      return LIBUSB_ERROR_NO_DEVICE;
    case LIBUSB_TRANSFER_OVERFLOW:
      return LIBUSB_ERROR_OVERFLOW;
    case LIBUSB_TRANSFER_ERROR:
    case LIBUSB_TRANSFER_CANCELLED:
      return LIBUSB_ERROR_IO;
  }
  return LIBUSB_ERROR_OTHER;
}

// Submits `urb` and handles events until its answer has come; `actual` gets the bytes
// transferred (at most `requested`). Returns the libusb error code of the outcome. `t` describes
// the transfer for the trace.
int run_sync(RemoteHandle& handle, wire::UrbSubmit urb, std::span<std::uint8_t> in, int requested,
             int& actual, libusb_transfer& t) {
  RemoteDevice& device = handle.device();
  if (device.gone()) return LIBUSB_ERROR_NO_DEVICE;
  Context& context = device.context();
  SyncWait wait{&context, context.lifeline(), {}, 0};
  const std::uint64_t submitted_ns = tracing() ? monotonic_ns() : 0;
  urb.handle = handle.id();
  capture_submission(&wait, device, urb);
  auto trans_id =
      device.link().client().submit(std::move(urb), in, [w = &wait](const client::UrbResult& r) {
        // Once `completed` is set the caller may return and `w` be gone: take what is needed.
        const bool here = w->context->handling_events_here();
        const std::shared_ptr<Context::Lifeline> lifeline = here ? nullptr : w->lifeline;
        w->result = r;
        std::atomic_ref<int>(w->completed).store(1, std::memory_order_release);
        // Read by another thread: the event handler may be asleep in poll() on a socket whose
        // bytes that thread took.
        if (lifeline) lifeline->wake();
      });
  if (!trans_id) {
    capture_submission_error(&wait, trans_id.error());
    return trans_id.error();
  }
  while (!std::atomic_ref<int>(wait.completed).load(std::memory_order_acquire)) {
    timeval tv{60, 0};
    const int r = context.handle_events_timeout_completed(&tv, &wait.completed);
    if (r < 0 && r != LIBUSB_ERROR_INTERRUPTED) {
      log::warn("event handling failed ({}); cancelling the transfer", libusb_error_name(r));
      device.link().client().cancel(*trans_id);
    }
  }
  actual = static_cast<int>(
      std::min<std::uint64_t>(wait.result.actual_length, static_cast<std::uint64_t>(requested)));
  const auto status = static_cast<libusb_transfer_status>(wait.result.status);
  capture_completion(&wait, wait.result.status, wait.result.actual_length, wait.result.iso, in);
  if (tracing()) {
    t.status = status;
    t.actual_length = actual;
    trace_transfer(*trans_id, &t, device.bus_number(), device.info().device_address, submitted_ns,
                   monotonic_ns());
  }
  return status_to_error(status);
}

}  // namespace

int remote_control_transfer(RemoteHandle& handle, std::uint8_t request_type, std::uint8_t request,
                            std::uint16_t value, std::uint16_t index, unsigned char* data,
                            std::uint16_t length, unsigned int timeout) {
  if (handle.device().context().handling_events_here()) return LIBUSB_ERROR_BUSY;
  if (length > 0 && !data) return LIBUSB_ERROR_INVALID_PARAM;
  wire::UrbSubmit urb;
  urb.type = wire::UrbType::Control;
  urb.endpoint = 0;
  urb.timeout_ms = timeout;
  urb.data_len = length;
  libusb_fill_control_setup(urb.setup.data(), request_type, request, value, index, length);
  // OUT data is sent from the caller's buffer. IN data lands in a scratch buffer and reaches
  // the caller's only on success, as with libusb (which reads into its own buffer).
  constexpr std::size_t kOnStack = 256;
  std::array<std::uint8_t, kOnStack> small;
  std::vector<std::uint8_t> large;
  const bool is_in = (request_type & LIBUSB_ENDPOINT_IN) != 0;
  std::span<std::uint8_t> in;
  if (!is_in) {
    urb.payload = bytes(data, length);
  } else if (length <= kOnStack) {
    in = std::span<std::uint8_t>(small).first(length);
  } else {
    large.resize(length);
    in = large;
  }
  libusb_transfer t{};  // for the trace only
  t.type = LIBUSB_TRANSFER_TYPE_CONTROL;
  t.timeout = timeout;
  t.length = LIBUSB_CONTROL_SETUP_SIZE + length;
  int actual = 0;
  const int r = run_sync(handle, std::move(urb), in, length, actual, t);
  if (r != LIBUSB_SUCCESS) return r;
  if (is_in && actual > 0) std::memcpy(data, in.data(), static_cast<std::size_t>(actual));
  return actual;
}

int remote_bulk_or_interrupt_transfer(RemoteHandle& handle, unsigned char endpoint,
                                      unsigned char* data, int length, int* transferred,
                                      unsigned int timeout, std::uint8_t type) {
  if (handle.device().context().handling_events_here()) return LIBUSB_ERROR_BUSY;
  libusb_transfer t{};  // described as libusb would fill it, to share its checks
  libusb_fill_bulk_transfer(&t, handle.as_libusb(), endpoint, data, length, nullptr, nullptr,
                            timeout);
  t.type = type;
  wire::UrbSubmit urb;
  std::span<std::uint8_t> in;
  if (const int r = build_urb(&t, urb, in); r != LIBUSB_SUCCESS) return r;
  int actual = 0;
  const int r = run_sync(handle, std::move(urb), in, length, actual, t);
  if (transferred) *transferred = actual;
  return r;
}

}  // namespace usbnet::interpose
