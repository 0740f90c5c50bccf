// The simulated bus's root hub (docs/DEVICES.md): what every simulated device hangs from, as a
// Linux root hub is the top of each real bus. It is topology: sessions never open a hub (the
// agent's kernel would drive a real one), so it only answers what a hub driver would read
// first, its hub descriptor and its status. Its status-change endpoint never fires: no port
// of a simulated hub changes state on its own.
#include "agent/sim/devices.h"

namespace usbnet::agent::sim {

namespace {

constexpr std::uint8_t kClassHub = 0x09, kHubDescriptorType = 0x29;
constexpr std::uint8_t kGetStatus = 0x00, kGetDescriptor = 0x06;
constexpr std::uint8_t kClassDeviceIn = 0xa0;  // IN, class, recipient device (the hub)

class RootHub final : public SimDevice {
 public:
  RootHub(boost::asio::any_io_executor executor, DeviceDescription d, std::uint8_t ports)
      : SimDevice(std::move(executor), std::move(d)), ports_(ports) {}

 private:
  // The status-change endpoint (0x81): transfers wait until they time out or are cancelled.
  void serve(Endpoint&, Pending&) override {}

  ControlOutcome function_control(const wire::SetupPacket& setup,
                                  std::span<const std::uint8_t>) override {
    if (setup.bmRequestType != kClassDeviceIn) return ControlOutcome::stall();
    if (setup.bRequest == kGetDescriptor && (setup.wValue.get() >> 8) == kHubDescriptorType) {
      // USB 2.0 11.23.2.1, for up to 7 ports: per-port power switching and over-current
      // protection (wHubCharacteristics 0x0009), 20 ms power-on, removable ports.
      return ControlOutcome::done({9, kHubDescriptorType, ports_, 0x09, 0x00, 10, 0, 0x00, 0xff});
    }
    if (setup.bRequest == kGetStatus) return ControlOutcome::done({0, 0, 0, 0});
    return ControlOutcome::stall();
  }

  std::uint8_t ports_;
};

}  // namespace

std::shared_ptr<SimDevice> make_root_hub(boost::asio::any_io_executor executor,
                                         std::uint8_t ports) {
  DeviceDescription d;
  d.name = "root hub";
  d.speed = 3;  // high
  // As Linux's USB 2.0 root hubs: 1d6b:0002 (Linux Foundation), hub class, self-powered.
  d.device = {0x0200, kClassHub, 64, 0x1d6b, 0x0002, 0x0100, 1, 2, 3};
  d.configs = {{1, 0, 0xe0, 0, {{0, 0, kClassHub, 0, 0, 0, {}, {{0x81, 0x03, 4, 12, {}}}}}}};
  d.strings = {"usbnet", "usbnet simulated root hub", "usbnet-sim"};
  return std::make_shared<RootHub>(std::move(executor), std::move(d), ports);
}

}  // namespace usbnet::agent::sim
