#include "client/urb_table.h"

#include <algorithm>
#include <cstring>

#include <fmt/format.h>

namespace usbnet::client {

using wire::UrbStatus;

namespace {
constexpr std::size_t kIdleQueuesKept = 64;
}  // namespace

bool UrbTable::add(std::uint32_t trans_id, Urb urb) {
  if (urb.owner && !owners_.emplace(urb.owner, trans_id).second) return false;
  Entry entry;
  entry.urb = std::move(urb);
  entry.sequence = next_sequence_++;
  urbs_.emplace(trans_id, std::move(entry));
  return true;
}

std::optional<std::uint32_t> UrbTable::find(const void* owner) const {
  auto it = owners_.find(owner);
  if (it == owners_.end()) return std::nullopt;
  return it->second;
}

std::optional<UrbTable::CancelStart> UrbTable::start_cancel(const void* owner) {
  const auto trans_id = find(owner);
  if (!trans_id) return std::nullopt;
  Entry& e = urbs_.at(*trans_id);
  if (e.cancel_asked) return std::nullopt;
  e.cancel_asked = true;
  // Answered already: the status it reached first stands (its data may still be coming).
  return CancelStart{*trans_id, !e.agent_answered && !e.abandoned};
}

std::optional<std::string> UrbTable::check_fits(const Entry& e, const wire::UrbComplete& c) const {
  const Urb& u = e.urb;
  if (c.data_len > u.in.size()) {
    return fmt::format("URB_COMPLETE {} carries {} bytes for a buffer of {}", c.trans_id,
                       c.data_len, u.in.size());
  }
  if (!u.iso_lengths.empty()) {
    if (c.iso.size() != u.iso_lengths.size()) {
      return fmt::format("URB_COMPLETE {} has {} iso packets, the URB {}", c.trans_id, c.iso.size(),
                         u.iso_lengths.size());
    }
    std::uint64_t sum = 0;
    for (std::size_t i = 0; i < c.iso.size(); ++i) {
      if (c.iso[i].actual_length > u.iso_lengths[i]) {
        return fmt::format("URB_COMPLETE {}: iso packet {} has {} bytes, {} were asked for",
                           c.trans_id, i, c.iso[i].actual_length, u.iso_lengths[i]);
      }
      sum += c.iso[i].actual_length;
    }
    if (!u.in.empty() && c.data_len != sum) {
      return fmt::format("URB_COMPLETE {}: iso IN packets hold {} bytes, {} are carried",
                         c.trans_id, sum, c.data_len);
    }
    return std::nullopt;
  }
  if (!c.iso.empty()) return fmt::format("URB_COMPLETE {} has iso packets", c.trans_id);
  return std::nullopt;
}

std::span<std::uint8_t> UrbTable::landing_place(const wire::Message& head, std::size_t length) {
  if (const auto* c = std::get_if<wire::UrbComplete>(&head)) {
    auto it = urbs_.find(c->trans_id);
    if (it == urbs_.end()) return {};
    Entry& e = it->second;
    if (e.agent_answered || e.abandoned || e.forgotten || !e.urb.iso_lengths.empty() ||
        c->data_len > e.urb.in.size() || length > c->data_len) {
      return {};
    }
    e.landing = true;
    return e.urb.in.first(length);
  }
  if (const auto* piece = std::get_if<wire::UrbData>(&head)) {
    auto it = urbs_.find(piece->trans_id);
    if (it == urbs_.end()) return {};
    const Entry& e = it->second;
    // Answered (so never finished locally meanwhile), expecting exactly this piece.
    if (!e.agent_answered || e.abandoned || e.forgotten || !e.urb.iso_lengths.empty() ||
        piece->offset != e.data_received || piece->offset + length > e.urb.in.size()) {
      return {};
    }
    return e.urb.in.subspan(piece->offset, length);
  }
  return {};
}

void UrbTable::place(Entry& e, wire::ByteView bytes) {
  if (e.abandoned || e.forgotten || bytes.empty()) return;
  if (e.urb.iso_lengths.empty()) {
    std::uint8_t* to = e.urb.in.data() + e.data_received;
    if (to != bytes.data()) std::memcpy(to, bytes.data(), bytes.size());  // else read there
    e.data_received += static_cast<std::uint32_t>(bytes.size());
    return;
  }
  // Isochronous IN data arrives compact (each packet's actual bytes, back to back); each
  // packet goes to its own offset in the buffer, as libusb lays packets out.
  const auto& packets = e.reported->iso;
  while (!bytes.empty() && e.packet < packets.size()) {
    const std::uint32_t room = packets[e.packet].actual_length - e.packet_offset;
    const std::size_t n = std::min<std::size_t>(room, bytes.size());
    std::memcpy(e.urb.in.data() + e.packet_base + e.packet_offset, bytes.data(), n);
    e.packet_offset += static_cast<std::uint32_t>(n);
    bytes = bytes.subspan(n);
    if (e.packet_offset == packets[e.packet].actual_length) {
      e.packet_base += e.urb.iso_lengths[e.packet];
      e.packet_offset = 0;
      ++e.packet;
    }
  }
}

Expected<ReadyCompletions, std::string> UrbTable::on_complete(const wire::UrbComplete& c) {
  auto it = urbs_.find(c.trans_id);
  if (it == urbs_.end())
    return Unexpected{fmt::format("URB_COMPLETE for unknown trans_id {}", c.trans_id)};
  Entry& e = it->second;
  if (e.agent_answered) {
    return Unexpected{fmt::format("second URB_COMPLETE for trans_id {}", c.trans_id)};
  }
  e.agent_answered = true;
  e.landing = false;
  if (!e.abandoned) {
    if (auto fault = check_fits(e, c)) return Unexpected{*fault};
  }
  auto more =
      assembler_.begin(c.trans_id, c.data_len, static_cast<std::uint32_t>(c.payload.size()));
  if (!more) {
    return Unexpected{
        fmt::format("URB_COMPLETE {}: {}", c.trans_id, wire::wire_error_name(more.error()))};
  }
  if (!e.abandoned) {
    // A URB the client cancelled for its timeout timed out, as libusb reports its own.
    const UrbStatus status =
        e.timed_out && c.status == UrbStatus::Cancelled ? UrbStatus::TimedOut : c.status;
    e.reported = UrbResult{c.trans_id, status, c.actual_length, c.iso};
    order_[key_of(e.urb)].push_back(c.trans_id);
  }
  place(e, c.payload);
  if (*more) return ReadyCompletions{};
  return after_whole(c.trans_id, e);
}

Expected<ReadyCompletions, std::string> UrbTable::on_data(const wire::UrbData& piece) {
  auto whole = assembler_.accept(piece);
  if (!whole) {
    return Unexpected{fmt::format("URB_DATA for trans_id {}: {}", piece.trans_id,
                                  wire::wire_error_name(whole.error()))};
  }
  Entry& e = urbs_.at(piece.trans_id);  // the assembler only knows tracked URBs
  place(e, piece.payload);
  if (!*whole) return ReadyCompletions{};
  return after_whole(piece.trans_id, e);
}

ReadyCompletions UrbTable::after_whole(std::uint32_t trans_id, Entry& e) {
  if (e.abandoned) {
    // Already reported locally: the late answer is only absorbed.
    urbs_.erase(trans_id);
    return {};
  }
  e.whole = true;
  return release(key_of(e.urb));
}

ReadyCompletions UrbTable::release(Key key) {
  ReadyCompletions ready;
  auto order = order_.find(key);
  if (order == order_.end()) return ready;
  std::deque<std::uint32_t>& queue = order->second;
  while (!queue.empty()) {
    auto it = urbs_.find(queue.front());
    Entry& e = it->second;
    if (!e.whole) break;
    if (e.urb.owner) owners_.erase(e.urb.owner);
    e.urb.owner = nullptr;
    ready.push_back({std::move(e.urb.done), std::move(*e.reported)});
    queue.pop_front();
    if (e.abandoned) {
      e.urb.done = nullptr;  // stays to absorb the agent's late completion
    } else {
      urbs_.erase(it);
    }
  }
  if (queue.empty() && order_.size() > kIdleQueuesKept) order_.erase(order);
  return ready;
}

UrbResult UrbTable::failed(std::uint32_t trans_id, const Entry& e, UrbStatus status) {
  UrbResult result{trans_id, status, 0, {}};
  for (std::size_t i = 0; i < e.urb.iso_lengths.size(); ++i) result.iso.push_back({status, 0});
  return result;
}

ReadyCompletions UrbTable::finish_locally(std::uint32_t trans_id, UrbStatus status) {
  auto it = urbs_.find(trans_id);
  if (it == urbs_.end()) return {};
  Entry& e = it->second;
  if (e.agent_answered || e.abandoned || e.landing) return {};  // the agent's answer stands
  e.abandoned = true;
  e.reported = failed(trans_id, e, status);
  e.whole = true;
  order_[key_of(e.urb)].push_back(trans_id);
  return release(key_of(e.urb));
}

std::optional<std::uint32_t> UrbTable::forget(const void* owner) {
  auto found = owners_.find(owner);
  if (found == owners_.end()) return std::nullopt;
  const std::uint32_t trans_id = found->second;
  owners_.erase(found);
  Entry& e = urbs_.at(trans_id);
  e.urb.owner = nullptr;
  e.urb.done = nullptr;  // its outcome is released to nobody
  e.forgotten = true;    // and its buffer is gone: nothing is placed there any more
  if (e.agent_answered || e.abandoned) return std::nullopt;
  return trans_id;
}

UrbTable::Expiry UrbTable::expire(Clock::time_point now) {
  Expiry expiry;
  for (auto& [trans_id, e] : urbs_) {
    if (e.agent_answered || e.abandoned || e.landing || e.urb.lost_at == Clock::time_point::max()) {
      continue;
    }
    if (e.urb.lost_at <= now) {
      if (std::find(expiry.lost_handles.begin(), expiry.lost_handles.end(), e.urb.handle) ==
          expiry.lost_handles.end()) {
        expiry.lost_handles.push_back(e.urb.handle);
      }
      continue;
    }
    expiry.more = true;
    if (!e.timed_out && e.urb.timeout_at <= now) {
      e.timed_out = true;
      expiry.cancel.push_back(trans_id);
    }
  }
  return expiry;
}

template <typename Which>
ReadyCompletions UrbTable::fail_where(Which which, UrbStatus status) {
  ReadyCompletions ready;
  auto fail = [&](std::uint32_t trans_id, Entry& e) {
    if (e.urb.owner) owners_.erase(e.urb.owner);
    e.urb.owner = nullptr;
    ready.push_back({std::move(e.urb.done), failed(trans_id, e, status)});
    e.abandoned = true;  // dealt with; what the agent still sends is discarded
  };
  // First what the agent had answered, in the order it did (those whose data was still
  // coming fail); then all the others (unanswered, or answered with a fault), in the order
  // they were submitted.
  for (auto order = order_.begin(); order != order_.end();) {
    std::deque<std::uint32_t>& queue = order->second;
    if (queue.empty() || !which(urbs_.at(queue.front()))) {
      ++order;
      continue;
    }
    for (std::uint32_t trans_id : queue) {
      Entry& e = urbs_.at(trans_id);
      if (e.whole) {
        if (e.urb.owner) owners_.erase(e.urb.owner);
        e.urb.owner = nullptr;
        ready.push_back({std::move(e.urb.done), std::move(*e.reported)});
        e.abandoned = true;
      } else {
        fail(trans_id, e);
      }
      // Answered whole: nothing more comes. Answered with data still coming, or finished here
      // before the agent answered: kept, to absorb what the agent still sends.
      if (e.whole && e.agent_answered) urbs_.erase(trans_id);
    }
    order = order_.erase(order);
  }
  std::vector<std::pair<std::uint64_t, std::uint32_t>> unanswered;
  for (const auto& [trans_id, e] : urbs_) {
    if (!e.abandoned && which(e)) unanswered.emplace_back(e.sequence, trans_id);
  }
  std::sort(unanswered.begin(), unanswered.end());
  for (const auto& [sequence, trans_id] : unanswered) fail(trans_id, urbs_.at(trans_id));
  return ready;
}

ReadyCompletions UrbTable::fail_handle(std::uint32_t handle, UrbStatus status) {
  // (Not one whose answer is being read into its buffer right now: that answer stands.)
  return fail_where([handle](const Entry& e) { return e.urb.handle == handle && !e.landing; },
                    status);
}

ReadyCompletions UrbTable::fail_all(UrbStatus status) {
  ReadyCompletions ready = fail_where([](const Entry&) { return true; }, status);
  order_.clear();
  urbs_.clear();
  owners_.clear();
  assembler_ = wire::PieceAssembler{};
  return ready;
}

}  // namespace usbnet::client
