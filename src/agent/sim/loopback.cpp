// `loopback` and `loopback3`: a vendor-class device in the spirit of Linux's Gadget Zero.
#include <algorithm>
#include <boost/asio/post.hpp>
#include <cstring>

#include "agent/sim/devices.h"
#include "common/loopback_device.h"

namespace usbnet::agent::sim {

namespace {

using wire::UrbStatus;
using namespace loopback_device;

constexpr std::size_t kQueueLimit = 16u << 20;
constexpr std::size_t kBufferSize = 4096;

Bytes le64s(std::initializer_list<std::uint64_t> values) {
  Bytes out;
  for (const std::uint64_t v : values) {
    for (int i = 0; i < 8; ++i) out.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
  }
  return out;
}

class LoopbackDevice final : public SimDevice {
 public:
  using SimDevice::SimDevice;

 private:
  // Messages queued by an OUT endpoint for its IN twin.
  struct MessageQueue {
    std::deque<Bytes> messages;
    std::size_t bytes = 0;
  };

  void restart() override {
    bulk_ = {};
    interrupt_ = {};
    source_offset_ = sink_offset_ = sink_bytes_ = sink_errors_ = sink_zero_packets_ = 0;
  }

  void serve(Endpoint& ep, Pending& head) override {
    Transfer& t = *head.transfer;
    const auto size = static_cast<std::uint32_t>(t.buffer.size());
    switch (ep.address) {
      case kBulkOut:
      case kInterruptOut: {
        MessageQueue& q = ep.address == kBulkOut ? bulk_ : interrupt_;
        if (!q.messages.empty() && q.bytes + size > kQueueLimit) return;  // waits for readers
        q.messages.emplace_back(t.buffer.begin(), t.buffer.end());
        q.bytes += size;
        complete(ep, head, UrbStatus::Completed, size);
        return pump(static_cast<std::uint8_t>(ep.address | 0x80));
      }
      case kBulkIn:
      case kInterruptIn: {
        MessageQueue& q = ep.address == kBulkIn ? bulk_ : interrupt_;
        if (q.messages.empty()) return;  // waits for data
        Bytes& message = q.messages.front();
        UrbStatus status;
        std::size_t consumed;
        const std::uint32_t n = packet_rules(message.size(), size, ep.max_packet, status, consumed);
        std::copy_n(message.begin(), n, t.buffer.begin());
        q.bytes -= consumed;
        if (consumed == message.size()) {
          q.messages.pop_front();
        } else {
          message.erase(message.begin(), message.begin() + static_cast<std::ptrdiff_t>(consumed));
        }
        complete(ep, head, status, n);
        return pump(static_cast<std::uint8_t>(ep.address & 0x7f));
      }
      case kSourceIn:
        // Straight from the pattern table when it holds the whole run: no copy.
        t.in_data = pattern_view(size, source_offset_);
        if (t.in_data.empty()) fill_pattern(t.buffer.data(), size, source_offset_);
        source_offset_ += size;
        return complete(ep, head, UrbStatus::Completed, size);
      case kSinkOut:
        sink_errors_ += count_pattern_errors(t.buffer.data(), size, sink_offset_);
        sink_offset_ += size;
        sink_bytes_ += size;
        // The host ends a transfer with a zero-length packet when it is empty, or when it asked
        // for one (ADD_ZERO_PACKET) after a whole number of packets.
        if (size == 0 || ((t.flags & wire::kFlagAddZeroPacket) != 0 && size % ep.max_packet == 0)) {
          ++sink_zero_packets_;
        }
        return complete(ep, head, UrbStatus::Completed, size);
    }
  }

  ControlOutcome function_control(const wire::SetupPacket& setup,
                                  std::span<const std::uint8_t> out) override {
    if ((setup.bmRequestType & 0x7f) != 0x40) return ControlOutcome::stall();  // vendor, device
    const bool in = (setup.bmRequestType & 0x80) != 0;
    const std::uint16_t length = setup.wLength.get();
    switch (setup.bRequest) {
      case kWriteBuffer:
        if (in || length > kBufferSize) return ControlOutcome::stall();
        buffer_.assign(out.begin(), out.end());
        return ControlOutcome::done();
      case kReadBuffer:
        if (!in) return ControlOutcome::stall();
        // Only what the data stage takes (the answer is cut to wLength anyway).
        return ControlOutcome::done(Bytes(
            buffer_.begin(), buffer_.begin() + std::min<std::size_t>(length, buffer_.size())));
      case kDelay: {
        Bytes pattern(in ? length : 0);
        fill_pattern(pattern.data(), pattern.size(), 0);
        return ControlOutcome::later(std::chrono::milliseconds(setup.wValue.get()), pattern);
      }
      case kSinkStats:
        if (!in) return ControlOutcome::stall();
        return ControlOutcome::done(le64s({sink_bytes_, sink_errors_, sink_zero_packets_}));
      case kResetStreams:
        if (in) return ControlOutcome::stall();
        restart();
        return ControlOutcome::done();
      case kDetach: {
        if (in) return ControlOutcome::stall();
        const std::uint16_t ms = setup.wValue.get();
        // After the status stage: the answer reaches the host before the device leaves.
        boost::asio::post(executor(), [weak = weak_from_this(), ms] {
          if (auto self = std::static_pointer_cast<LoopbackDevice>(weak.lock())) {
            self->request_detach(std::chrono::milliseconds(ms == 0 ? 1000 : ms));
          }
        });
        return ControlOutcome::done();
      }
      case kAlwaysStall:
      default:
        return ControlOutcome::stall();
    }
  }

  MessageQueue bulk_, interrupt_;
  std::uint64_t source_offset_ = 0, sink_offset_ = 0, sink_bytes_ = 0, sink_errors_ = 0,
                sink_zero_packets_ = 0;
  Bytes buffer_;
};

std::vector<EndpointSpec> loopback_endpoints(std::uint16_t bulk_packet, bool superspeed) {
  const Bytes bulk_companion = superspeed ? ss_endpoint_companion(15, 0, 0) : Bytes{};
  const Bytes int_companion = superspeed ? ss_endpoint_companion(0, 0, 64) : Bytes{};
  return {
      {kBulkOut, 0x02, bulk_packet, 0, bulk_companion},
      {kBulkIn, 0x02, bulk_packet, 0, bulk_companion},
      {kSinkOut, 0x02, bulk_packet, 0, bulk_companion},
      {kSourceIn, 0x02, bulk_packet, 0, bulk_companion},
      {kInterruptOut, 0x03, 64, 1, int_companion},
      {kInterruptIn, 0x03, 64, 1, int_companion},
  };
}

std::array<std::uint8_t, 16> container_id(std::uint8_t last) {
  return {0x75, 0x73, 0x62, 0x66, 0x6e, 0x65, 0x74, 0x00,
          0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x00, last};
}

}  // namespace

std::shared_ptr<SimDevice> make_loopback(boost::asio::any_io_executor executor) {
  DeviceDescription d;
  d.name = "loopback";
  d.speed = 3;  // high
  d.device = {0x0201, 0, 64, kVendorId, kProductId, 0x0100, 1, 2, 3};
  d.configs = {{1, 4, 0x80, 50, {{0, 0, 0xff, 0, 0, 5, {}, loopback_endpoints(512, false)}}}};
  d.strings = {"usbnet", "Loopback", "LB0001", "Loopback", "Loopback interface"};
  d.bos = bos_descriptor(
      {usb2_extension_capability(0x00000002), container_id_capability(container_id(0x01))});
  return std::make_shared<LoopbackDevice>(std::move(executor), std::move(d));
}

std::shared_ptr<SimDevice> make_loopback3(boost::asio::any_io_executor executor) {
  DeviceDescription d;
  d.name = "loopback3";
  d.speed = 4;  // super
  d.device = {0x0300, 0, 9, kVendorId, 0x0004, 0x0100, 1, 2, 3};
  d.configs = {{1, 4, 0x80, 12, {{0, 0, 0xff, 0, 0, 5, {}, loopback_endpoints(1024, true)}}}};
  d.strings = {"usbnet", "Loopback SuperSpeed", "LB0003", "Loopback", "Loopback interface"};
  d.bos = bos_descriptor({usb2_extension_capability(0x00000002),
                          superspeed_capability(0, 0x000e, 1, 10, 2047),
                          container_id_capability(container_id(0x03))});
  return std::make_shared<LoopbackDevice>(std::move(executor), std::move(d));
}

}  // namespace usbnet::agent::sim
