// The simulated loopback device (`usbnet-agent --simulate loopback`, docs/DEVICES.md) as the
// programs that drive it see it: its IDs, endpoints, vendor requests and the pattern of its
// source and sink. The simulation (src/agent/sim/loopback.cpp), the tests and usbnet-bench all
// read them from here. Header only, nothing but <cstdint>: plain libusb programs include it too.
#pragma once

#include <cstddef>
#include <cstdint>

namespace usbnet::loopback_device {

// pid.codes' test vendor, which every simulated device uses.
inline constexpr std::uint16_t kVendorId = 0x1209;
inline constexpr std::uint16_t kProductId = 0x0001;
// As USBNET_DEVICES, device filters and the examples take it.
inline constexpr char kVidPid[] = "1209:0001";

// Endpoints of interface 0.
inline constexpr std::uint8_t kBulkOut = 0x01;       // each transfer queued as one message
inline constexpr std::uint8_t kBulkIn = 0x81;        // the queued messages, in order
inline constexpr std::uint8_t kSinkOut = 0x02;       // swallows the pattern, counts errors
inline constexpr std::uint8_t kSourceIn = 0x82;      // the pattern, at once
inline constexpr std::uint8_t kInterruptOut = 0x03;  // like kBulkOut
inline constexpr std::uint8_t kInterruptIn = 0x83;   // like kBulkIn

// Vendor requests to the device (bmRequestType 0x40 or 0xc0).
inline constexpr std::uint8_t kWriteBuffer = 0x01, kReadBuffer = 0x02, kAlwaysStall = 0x03,
                              kDelay = 0x04, kSinkStats = 0x05, kResetStreams = 0x06,
                              kDetach = 0x07;

// The stream pattern of the source and the sink: byte n of the stream is n % 251 (a prime, so
// that no packet or buffer size lines up with its period).
inline constexpr std::size_t kPatternPeriod = 251;
constexpr std::uint8_t pattern_byte(std::uint64_t n) {
  return static_cast<std::uint8_t>(n % kPatternPeriod);
}

}  // namespace usbnet::loopback_device
