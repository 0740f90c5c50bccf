// `audio`: isochronous IN and OUT at full speed, one packet per millisecond.
#include <map>

#include "agent/sim/devices.h"

namespace usbnet::agent::sim {

namespace {

using wire::UrbStatus;
using Clock = std::chrono::steady_clock;

constexpr std::uint8_t kIsoStats = 0x05, kResetStreams = 0x06;

class AudioDevice final : public SimDevice {
 public:
  using SimDevice::SimDevice;

 private:
  // One transfer at a time per endpoint is on the bus: N packets take N milliseconds.
  struct Pacing {
    std::unique_ptr<boost::asio::steady_timer> timer;
    std::uint64_t serial = 0;
    Clock::time_point free_at{};
  };

  void restart() override { in_frame_ = 0; }

  void serve(Endpoint& ep, Pending& head) override {
    Pacing& pacing = pacing_[ep.address];
    if (pacing.serial == head.serial) return;  // already on the bus
    if (!pacing.timer) pacing.timer = std::make_unique<boost::asio::steady_timer>(executor());
    const auto packets = head.transfer->iso_lengths.size();
    const auto start = std::max(Clock::now(), pacing.free_at);
    pacing.free_at = start + std::chrono::milliseconds(packets);
    pacing.serial = head.serial;
    pacing.timer->expires_at(pacing.free_at);
    pacing.timer->async_wait([weak = weak_from_this(), this, address = ep.address,
                              serial = head.serial](const boost::system::error_code& ec) {
      if (ec || !weak.lock()) return;
      Endpoint* ep = endpoint(address);
      if (!ep || ep->queue.empty() || ep->queue.front()->serial != serial) return;
      finish_packets(*ep, *ep->queue.front());
    });
  }

  void finish_packets(Endpoint& ep, Pending& head) {
    Transfer& t = *head.transfer;
    std::vector<wire::IsoPacketResult> results;
    std::uint32_t total = 0, offset = 0;
    for (std::uint32_t requested : t.iso_lengths) {
      if (ep.address & 0x80) {
        const std::uint64_t f = in_frame_++;
        if (f % 64 == 63) {
          results.push_back({UrbStatus::Error, 0});  // lost on the bus
        } else {
          const std::uint32_t n = std::min<std::uint32_t>(176 + 4 * (f % 5), requested);
          for (std::uint32_t i = 0; i < n; ++i) {
            t.buffer[offset + i] = static_cast<std::uint8_t>((f + i) % 256);
          }
          results.push_back({UrbStatus::Completed, n});
          total += n;
        }
      } else {
        ++out_packets_;
        out_bytes_ += requested;
        results.push_back({UrbStatus::Completed, requested});
        total += requested;
      }
      offset += requested;
    }
    complete(ep, head, UrbStatus::Completed, total, std::move(results));
  }

  ControlOutcome function_control(const wire::SetupPacket& setup,
                                  std::span<const std::uint8_t>) override {
    if (setup.bmRequestType == 0xc0 && setup.bRequest == kIsoStats) {
      Bytes out(16);
      for (int i = 0; i < 8; ++i) {
        out[i] = static_cast<std::uint8_t>(out_packets_ >> (8 * i));
        out[8 + i] = static_cast<std::uint8_t>(out_bytes_ >> (8 * i));
      }
      return ControlOutcome::done(out);
    }
    if (setup.bmRequestType == 0x40 && setup.bRequest == kResetStreams) {
      in_frame_ = out_packets_ = out_bytes_ = 0;
      return ControlOutcome::done();
    }
    return ControlOutcome::stall();
  }

  std::map<std::uint8_t, Pacing> pacing_;
  std::uint64_t in_frame_ = 0, out_packets_ = 0, out_bytes_ = 0;
};

}  // namespace

std::shared_ptr<SimDevice> make_audio(boost::asio::any_io_executor executor) {
  DeviceDescription d;
  d.name = "audio";
  d.speed = 2;  // full
  d.device = {0x0200, 0, 64, 0x1209, 0x0003, 0x0100, 1, 2, 3};
  d.configs = {{1,
                0,
                0xc0,
                0,
                {{0, 0, 0xff, 0, 0, 0, {}, {}},
                 {0, 1, 0xff, 0, 0, 0, {}, {{0x81, 0x05, 192, 1, {}}, {0x01, 0x05, 192, 1, {}}}}}}};
  d.strings = {"usbnet", "Iso Audio", "AU0001"};
  return std::make_shared<AudioDevice>(std::move(executor), std::move(d));
}

}  // namespace usbnet::agent::sim
