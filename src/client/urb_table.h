// The one record of every URB a client has in flight on one connection, from submission to
// completion: the submitter's key (its libusb_transfer), where the IN data goes, whether a cancel
// was asked for, its deadlines, and what the agent has answered so far. Submission, cancel,
// timeout, completion and the loss of the agent all find the URB here, by trans_id or by its
// submitter's key.
//
// It pairs each URB_COMPLETE (and its URB_DATA pieces) with the URB it answers, copies the IN
// data straight into the submitter's buffer (scattering isochronous packets to their offsets),
// and releases completions per endpoint in the order the agent reported them (the device's
// order: in submission order, except that a cancelled or timed-out URB ends at once, as the
// kernel gives it back), holding a completion only while an earlier one's data is still
// arriving in pieces. Pure logic: no sockets, no threads; the caller serializes access and
// runs the callbacks it gets.
#pragma once

#include <boost/container/small_vector.hpp>
#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "usbnet/expected.h"
#include "usbnet/messages.h"
#include "usbnet/pieces.h"

namespace usbnet::client {

struct UrbResult {
  std::uint32_t trans_id = 0;
  wire::UrbStatus status = wire::UrbStatus::Completed;
  std::uint32_t actual_length = 0;
  std::vector<wire::IsoPacketResult> iso;
};
using UrbDone = std::function<void(const UrbResult&)>;

// A completion ready to be delivered: run `done(result)` outside the table's lock.
struct ReadyCompletion {
  UrbDone done;
  UrbResult result;
};
// Usually one or two: kept inline, without an allocation per answer.
using ReadyCompletions = boost::container::small_vector<ReadyCompletion, 2>;

using Clock = std::chrono::steady_clock;

// What the submitter says about a URB.
struct Urb {
  const void* owner = nullptr;  // the submitter's key (a libusb_transfer); null: none
  std::uint32_t handle = 0;
  std::uint8_t endpoint = 0;   // with direction bit; 0 for control
  std::span<std::uint8_t> in;  // where IN data goes (the data stage for control); empty for OUT
  std::vector<std::uint32_t> iso_lengths;  // requested packet lengths, for the IN scatter
  UrbDone done;
  // When its libusb timeout expires: the client asks the agent to cancel it, and waits for the
  // true outcome (max: no timeout).
  Clock::time_point timeout_at = Clock::time_point::max();
  // When the client stops waiting for that answer (the timeout plus a grace period): past it,
  // what the device did is unknowable.
  Clock::time_point lost_at = Clock::time_point::max();
};

class UrbTable {
 public:
  // Starts tracking a URB under `trans_id` (which must be unused). False (and nothing tracked)
  // when its owner has a URB in flight already.
  bool add(std::uint32_t trans_id, Urb urb);
  bool contains(std::uint32_t trans_id) const { return urbs_.contains(trans_id); }
  std::size_t in_flight() const { return urbs_.size(); }
  // The URB in flight for `owner` (until its completion has been released).
  std::optional<std::uint32_t> find(const void* owner) const;

  // A cancel is asked for: returns the URB's trans_id, and whether the agent still has to be
  // told (it has not answered yet); nullopt when the owner has no URB in flight or a cancel was
  // asked for already.
  struct CancelStart {
    std::uint32_t trans_id;
    bool tell_agent;
  };
  std::optional<CancelStart> start_cancel(const void* owner);

  // A URB_COMPLETE arrived. Returns the completions now deliverable, or the protocol fault
  // (an unknown trans_id, more data than the buffer, a malformed piece sequence).
  Expected<ReadyCompletions, std::string> on_complete(const wire::UrbComplete& c);
  // A URB_DATA piece arrived.
  Expected<ReadyCompletions, std::string> on_data(const wire::UrbData& piece);

  // Where the `length` payload bytes of a URB_COMPLETE or URB_DATA (`head`, payload not yet
  // arrived) belong in the submitter's buffer, so that they are read there directly; empty when
  // they do not simply go there (isochronous scatter, an abandoned URB, a misfit the protocol
  // checks will report). A URB whose completion is landing cannot be finished locally until
  // on_complete() has seen it: its buffer is being written.
  std::span<std::uint8_t> landing_place(const wire::Message& head, std::size_t length);

  // Ends a URB here without waiting for the agent (a cancel that never left, a timeout the
  // client enforced). The agent's late completion, if any, is accepted and discarded: the
  // buffer is never written again.
  ReadyCompletions finish_locally(std::uint32_t trans_id, wire::UrbStatus status);
  // Its submitter is gone (the transfer was freed in flight): the URB's outcome is reported to
  // nobody and its buffer is never written again. Returns its trans_id if the agent has not
  // answered yet (the caller cancels it there).
  std::optional<std::uint32_t> forget(const void* owner);

  // Ends every URB with `status` (the connection is gone), in per-endpoint order.
  ReadyCompletions fail_all(wire::UrbStatus status);

  // Ends every URB of `handle` with `status` (its link can no longer tell what the device did),
  // in per-endpoint order. Whatever the agent still sends for them is discarded.
  ReadyCompletions fail_handle(std::uint32_t handle, wire::UrbStatus status);

  // What the URBs' deadlines ask for at `now` (a scan: URBs in flight are few, and looking at
  // them a few times a second is cheaper than keeping them sorted).
  struct Expiry {
    // Their timeout expired, unanswered: cancel them at the agent (each is listed once; its
    // CANCELLED answer is reported as TIMED_OUT, with the length the device moved).
    std::vector<std::uint32_t> cancel;
    // Handles with a URB still unanswered past its grace: the truth is unknowable (fail_handle).
    std::vector<std::uint32_t> lost_handles;
    bool more = false;  // some other URB still has a deadline ahead
  };
  Expiry expire(Clock::time_point now);

 private:
  struct Entry {
    Urb urb;
    std::optional<UrbResult> reported;  // the outcome (its data may still be coming)
    bool cancel_asked = false;          // a cancel was asked for
    bool timed_out = false;             // cancelled at the agent because its timeout expired
    bool agent_answered = false;        // URB_COMPLETE arrived
    bool whole = false;                 // reported, with all its data placed
    bool abandoned = false;             // finished locally; discard what the agent still sends
    bool forgotten = false;             // its submitter is gone: its buffer is never written
    bool landing = false;               // its URB_COMPLETE's payload is being read into `in`
    std::uint64_t sequence = 0;         // submission order
    std::uint32_t data_received = 0;    // IN bytes placed so far (non-iso)
    std::size_t packet = 0;             // iso scatter cursor: the packet being filled,
    std::uint32_t packet_offset = 0;    // the bytes placed in it,
    std::uint32_t packet_base = 0;      // and its offset in the buffer
  };
  using Key = std::uint64_t;  // handle and endpoint
  static Key key_of(const Urb& u) { return (std::uint64_t{u.handle} << 8) | u.endpoint; }

  std::optional<std::string> check_fits(const Entry& e, const wire::UrbComplete& c) const;
  void place(Entry& e, wire::ByteView bytes);
  ReadyCompletions after_whole(std::uint32_t trans_id, Entry& e);
  ReadyCompletions release(Key key);
  // Fails the URBs `which` selects: those answered whole keep their outcome, the others end with
  // `status`, in per-endpoint order (then the unanswered in submission order).
  template <typename Which>
  ReadyCompletions fail_where(Which which, wire::UrbStatus status);
  static UrbResult failed(std::uint32_t trans_id, const Entry& e, wire::UrbStatus status);

  std::unordered_map<std::uint32_t, Entry> urbs_;
  // The owners of URBs whose completion has not been released yet.
  std::unordered_map<const void*, std::uint32_t> owners_;
  // Per endpoint, the trans_ids whose outcome is known, in the order it became known. A queue
  // that empties stays (its endpoint is likely used again at once) until there are many.
  std::map<Key, std::deque<std::uint32_t>> order_;
  std::uint64_t next_sequence_ = 0;
  wire::PieceAssembler assembler_;
};

}  // namespace usbnet::client
