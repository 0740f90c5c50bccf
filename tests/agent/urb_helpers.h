// Building URBs for the simulated devices and running them over a WireClient.
#pragma once

#include <cstring>

#include "common/loopback_device.h"
#include "common/topology.h"
#include "support/wire_client.h"

namespace usbnet::test {

inline wire::UrbSubmit control(std::uint32_t handle, std::uint8_t request_type,
                               std::uint8_t request, std::uint16_t value, std::uint16_t index,
                               std::uint16_t length, std::uint32_t timeout_ms = 1000) {
  wire::UrbSubmit u;
  u.type = wire::UrbType::Control;
  u.handle = handle;
  u.setup = {request_type,
             request,
             static_cast<std::uint8_t>(value),
             static_cast<std::uint8_t>(value >> 8),
             static_cast<std::uint8_t>(index),
             static_cast<std::uint8_t>(index >> 8),
             static_cast<std::uint8_t>(length),
             static_cast<std::uint8_t>(length >> 8)};
  u.data_len = length;
  u.timeout_ms = timeout_ms;
  return u;
}

inline wire::UrbSubmit transfer(wire::UrbType type, std::uint32_t handle, std::uint8_t endpoint,
                                std::uint32_t length, std::uint32_t timeout_ms = 2000) {
  wire::UrbSubmit u;
  u.type = type;
  u.handle = handle;
  u.endpoint = endpoint;
  u.data_len = length;
  u.timeout_ms = timeout_ms;
  return u;
}

// Sends a URB (OUT data split into pieces of `piece` bytes) and returns its trans_id.
inline std::uint32_t send_urb(WireClient& c, wire::UrbSubmit u, wire::ByteView data = {},
                              std::size_t piece = wire::kDefaultPieceSize) {
  u.trans_id = c.next_id();
  wire::PieceSplitter splitter(data, static_cast<std::uint32_t>(piece));
  u.payload = splitter.inline_part();
  c.send(u);
  while (!splitter.done()) c.send(splitter.next_piece(u.trans_id));
  return u.trans_id;
}

// The completion of `trans_id`, with its IN data gathered from the pieces that follow it.
struct Completion {
  wire::UrbStatus status = wire::UrbStatus::Error;
  std::uint32_t actual_length = 0;
  std::vector<wire::IsoPacketResult> iso;
  wire::Bytes data;
};

inline std::optional<Completion> wait_complete(
    WireClient& c, std::uint32_t trans_id,
    std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
  auto r = c.receive_id(trans_id, timeout);
  if (!r || !r->as<wire::UrbComplete>()) return std::nullopt;
  const auto& head = *r->as<wire::UrbComplete>();
  Completion done{head.status, head.actual_length, head.iso,
                  wire::Bytes(head.payload.begin(), head.payload.end())};
  while (done.data.size() < head.data_len) {
    auto piece = c.receive_id(trans_id, timeout);
    if (!piece || !piece->as<wire::UrbData>()) return std::nullopt;
    const auto& p = *piece->as<wire::UrbData>();
    if (p.offset != done.data.size()) return std::nullopt;
    done.data.insert(done.data.end(), p.payload.begin(), p.payload.end());
  }
  return done;
}

inline std::optional<Completion> run_urb(WireClient& c, const wire::UrbSubmit& u,
                                         wire::ByteView data = {}) {
  return wait_complete(c, send_urb(c, u, data));
}

// Opens the first device with this product id (the simulated devices' vendor), claims
// interface 0.
inline std::uint32_t open_claimed(WireClient& c, std::uint16_t product) {
  for (const auto& d : c.list()) {
    if (topology::vendor_id(d) != loopback_device::kVendorId) continue;
    if ((d.device_descriptor[10] | d.device_descriptor[11] << 8) != product) continue;
    auto handle = c.request(wire::Open{0, d.device_id});
    if (!handle) return 0;
    if (!c.request(wire::ClaimInterface{0, *handle, 0})) return 0;
    return *handle;
  }
  return 0;
}

// The device_id of the first device (not a hub) with this product id, or 0.
inline std::uint32_t device_with_product(WireClient& c, std::uint16_t product) {
  for (const auto& d : without_hubs(c.list())) {
    if ((d.device_descriptor[10] | d.device_descriptor[11] << 8) == product) return d.device_id;
  }
  return 0;
}

// How often `what` occurs in `text` (say, lines of an agent's log).
inline std::size_t occurrences(const std::string& text, const std::string& what) {
  std::size_t n = 0;
  for (std::size_t at = 0; (at = text.find(what, at)) != std::string::npos; at += what.size()) {
    ++n;
  }
  return n;
}

inline wire::Bytes pattern(std::size_t n, std::uint64_t offset = 0) {
  wire::Bytes b(n);
  for (std::size_t i = 0; i < n; ++i) b[i] = loopback_device::pattern_byte(offset + i);
  return b;
}

}  // namespace usbnet::test
