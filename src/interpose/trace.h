// USBNET_TRACE: one line per remote transfer, written when it completes (a log of every
// trans_id with its timestamp, latency and result).
#pragma once

#include <libusb.h>

#include <cstdint>

namespace usbnet::interpose {

bool tracing();
void trace_transfer(std::uint32_t trans_id, const libusb_transfer* transfer,
                    std::uint8_t bus_number, std::uint8_t device_address,
                    std::uint64_t submitted_ns, std::uint64_t completed_ns);
std::uint64_t monotonic_ns();

}  // namespace usbnet::interpose
