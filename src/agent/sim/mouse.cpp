// `mouse`: a HID boot mouse that walks a square, one report every 10 ms.
#include "agent/sim/devices.h"

namespace usbnet::agent::sim {

namespace {

using wire::UrbStatus;
using Clock = std::chrono::steady_clock;

constexpr auto kReportInterval = std::chrono::milliseconds(10);
constexpr std::uint8_t kGetReport = 0x01, kGetIdle = 0x02, kGetProtocol = 0x03, kSetIdle = 0x0a,
                       kSetProtocol = 0x0b;

// Buttons (3 bits and padding), X, Y, wheel: the boot mouse report, with a wheel.
const Bytes kReportDescriptor = {0x05, 0x01, 0x09, 0x02, 0xa1, 0x01, 0x09, 0x01, 0xa1, 0x00, 0x05,
                                 0x09, 0x19, 0x01, 0x29, 0x03, 0x15, 0x00, 0x25, 0x01, 0x95, 0x03,
                                 0x75, 0x01, 0x81, 0x02, 0x95, 0x01, 0x75, 0x05, 0x81, 0x01, 0x05,
                                 0x01, 0x09, 0x30, 0x09, 0x31, 0x09, 0x38, 0x15, 0x81, 0x25, 0x7f,
                                 0x75, 0x08, 0x95, 0x03, 0x81, 0x06, 0xc0, 0xc0};

Bytes hid_descriptor() {
  return {9,
          0x21,
          0x11,
          0x01,
          0x00,
          0x01,
          0x22,
          static_cast<std::uint8_t>(kReportDescriptor.size()),
          static_cast<std::uint8_t>(kReportDescriptor.size() >> 8)};
}

// Report k: right, down, left, up, 25 reports each; button 1 at the start of each side.
Bytes report(std::uint64_t k) {
  static constexpr std::int8_t dx[] = {4, 0, -4, 0};
  static constexpr std::int8_t dy[] = {0, 4, 0, -4};
  const std::size_t phase = (k / 25) % 4;
  return {static_cast<std::uint8_t>(k % 25 == 0 ? 1 : 0), static_cast<std::uint8_t>(dx[phase]),
          static_cast<std::uint8_t>(dy[phase]), 0};
}

class MouseDevice final : public SimDevice {
 public:
  MouseDevice(boost::asio::any_io_executor executor, DeviceDescription d)
      : SimDevice(executor, std::move(d)), tick_(executor) {}

 private:
  void restart() override {
    reports_ = 0;
    next_report_ = Clock::now();
  }

  void serve(Endpoint& ep, Pending& head) override {
    if (ep.address != 0x81) return;
    const auto now = Clock::now();
    if (now < next_report_) {
      if (!ticking_) {
        ticking_ = true;
        tick_.expires_at(next_report_);
        tick_.async_wait([weak = weak_from_this(), this](const boost::system::error_code& ec) {
          if (ec || !weak.lock()) return;
          ticking_ = false;
          pump(0x81);
        });
      }
      return;
    }
    Transfer& t = *head.transfer;
    const Bytes r = report(reports_++);
    next_report_ = now + kReportInterval;
    UrbStatus status;
    std::size_t consumed;
    const std::uint32_t n =
        packet_rules(r.size(), t.buffer.size(), ep.max_packet, status, consumed);
    std::copy_n(r.begin(), n, t.buffer.begin());
    complete(ep, head, status, n);
  }

  ControlOutcome function_control(const wire::SetupPacket& setup,
                                  std::span<const std::uint8_t>) override {
    // Class requests to interface 0.
    if ((setup.bmRequestType & 0x7f) != 0x21 || setup.wIndex.get() != 0) {
      return ControlOutcome::stall();
    }
    const bool in = (setup.bmRequestType & 0x80) != 0;
    switch (setup.bRequest) {
      case kGetReport:
        if (!in) break;
        return ControlOutcome::done(report(reports_));
      case kGetIdle:
        if (!in) break;
        return ControlOutcome::done({idle_});
      case kSetIdle:
        if (in) break;
        idle_ = static_cast<std::uint8_t>(setup.wValue.get() >> 8);
        return ControlOutcome::done();
      case kGetProtocol:
        if (!in) break;
        return ControlOutcome::done({protocol_});
      case kSetProtocol:
        if (in || setup.wValue.get() > 1) break;
        protocol_ = static_cast<std::uint8_t>(setup.wValue.get());
        return ControlOutcome::done();
    }
    return ControlOutcome::stall();
  }

  boost::asio::steady_timer tick_;
  bool ticking_ = false;
  std::uint64_t reports_ = 0;
  Clock::time_point next_report_ = Clock::now();
  std::uint8_t idle_ = 0;
  std::uint8_t protocol_ = 1;
};

}  // namespace

std::shared_ptr<SimDevice> make_mouse(boost::asio::any_io_executor executor) {
  DeviceDescription d;
  d.name = "mouse";
  d.speed = 2;  // full
  d.device = {0x0200, 0, 8, 0x1209, 0x0002, 0x0100, 1, 2, 3};
  d.configs = {
      {1, 0, 0xa0, 50, {{0, 0, 0x03, 0x01, 0x02, 0, hid_descriptor(), {{0x81, 0x03, 4, 10, {}}}}}}};
  d.strings = {"usbnet", "Boot Mouse", "MS0001"};
  d.interface_descriptors[{0, 0x21}] = hid_descriptor();
  d.interface_descriptors[{0, 0x22}] = kReportDescriptor;
  return std::make_shared<MouseDevice>(std::move(executor), std::move(d));
}

}  // namespace usbnet::agent::sim
