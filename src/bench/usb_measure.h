// Measurements through libusb, on the loopback device (1209:0001). Plain libusb: the benchmark
// runs them in a worker process started with LD_PRELOAD=libusbnet.so.
#pragma once

#include <libusb.h>

#include <chrono>
#include <cstddef>

namespace usbnet::bench {

// Median round trip of a control transfer reading `size` bytes (vendor READ_BUFFER).
std::chrono::nanoseconds control_round_trip(libusb_device_handle* h, std::size_t size,
                                            int iterations);
// Bytes per second of synchronous bulk reads of `size` bytes from the source endpoint, until
// `total` bytes have been read.
double sync_bulk_in(libusb_device_handle* h, std::size_t size, std::size_t total);
// Bytes per second with `depth` asynchronous transfers of `size` bytes kept in flight, reading
// the source endpoint (in) or writing the sink (out), until `total` bytes have been moved.
double async_bulk(libusb_context* ctx, libusb_device_handle* h, bool in, std::size_t size,
                  int depth, std::size_t total);

}  // namespace usbnet::bench
