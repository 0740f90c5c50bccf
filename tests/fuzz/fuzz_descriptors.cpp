// libFuzzer target for the shim's descriptor parser: descriptors come from the agent, over the
// network, and a hostile or broken agent must not be able to crash the program that parses them.
//
// The first byte picks the parser (even: configuration, odd: BOS); the rest is the descriptor.
// Beyond "no crash, no sanitizer report, no leak": every array the parser hands out is walked
// to its announced length (AddressSanitizer checks each element is inside what was allocated),
// and no `extra` block is longer than the input.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "interpose/descriptors/descriptors.h"

using namespace usbnet::interpose;

namespace {

// Touches every byte of a block, so that AddressSanitizer sees any read past its end.
unsigned touch(const unsigned char* p, int length, std::size_t limit) {
  if (length < 0 || static_cast<std::size_t>(length) > limit) std::abort();
  unsigned sum = 0;
  for (int i = 0; i < length; ++i) sum += p[i];
  return sum;
}

void walk(const libusb_config_descriptor& c, std::size_t limit) {
  volatile unsigned sum = touch(c.extra, c.extra_length, limit);
  for (int i = 0; i < c.bNumInterfaces; ++i) {
    const libusb_interface& iface = c.interface[i];
    for (int a = 0; a < iface.num_altsetting; ++a) {
      const libusb_interface_descriptor& alt = iface.altsetting[a];
      sum = sum + touch(alt.extra, alt.extra_length, limit);
      if (alt.bNumEndpoints > 0 && !alt.endpoint) std::abort();  // a count beside no array
      for (int e = 0; e < alt.bNumEndpoints; ++e) {
        sum = sum + alt.endpoint[e].wMaxPacketSize +
              touch(alt.endpoint[e].extra, alt.endpoint[e].extra_length, limit);
      }
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const RawDescriptor raw(data + 1, size - 1);
  if (data[0] % 2 == 0) {
    auto config = parse_config_descriptor(raw);
    if (!config) return 0;
    walk(**config, raw.size());
    free_config_descriptor(*config);
  } else {
    auto bos = parse_bos_descriptor(raw);
    if (!bos) return 0;
    for (int i = 0; i < (*bos)->bNumDeviceCaps; ++i) {
      const auto* cap = (*bos)->dev_capability[i];
      volatile unsigned sum =
          touch(reinterpret_cast<const unsigned char*>(cap), cap->bLength, raw.size());
      (void)sum;
    }
    free_bos_descriptor(*bos);
  }
  return 0;
}
