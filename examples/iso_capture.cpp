// iso_capture: captures isochronous packets from the simulated audio device (1209:0003) and
// checks each one: its status, its length, and every byte (docs/DEVICES.md gives the stream).
//
//   iso_capture [TRANSFERS] [PACKETS_PER_TRANSFER] [DEPTH]
#include <vector>

#include "example_util.h"

namespace {

struct Capture {
  std::uint64_t frame = 0;  // the next packet's number in the device's stream
  int packets = 0, lost = 0, wrong = 0, remaining = 0, in_flight = 0;
};

void LIBUSB_CALL on_done(libusb_transfer* t) {
  auto* c = static_cast<Capture*>(t->user_data);
  if (t->status != LIBUSB_TRANSFER_COMPLETED) {
    std::fprintf(stderr, "transfer: %s\n", libusb_error_name(t->status));
    ++c->wrong;
  }
  for (int i = 0; i < t->num_iso_packets; ++i, ++c->frame) {
    const libusb_iso_packet_descriptor& p = t->iso_packet_desc[i];
    ++c->packets;
    const std::uint64_t f = c->frame;
    if (f % 64 == 63) {  // the device loses every 64th packet
      if (p.status != LIBUSB_TRANSFER_ERROR || p.actual_length != 0) ++c->wrong;
      ++c->lost;
      continue;
    }
    const unsigned expected = 176 + 4 * static_cast<unsigned>(f % 5);
    const unsigned char* data = libusb_get_iso_packet_buffer_simple(t, static_cast<unsigned>(i));
    bool ok = p.status == LIBUSB_TRANSFER_COMPLETED && p.actual_length == expected;
    for (unsigned k = 0; ok && k < expected; ++k) ok = data[k] == static_cast<unsigned char>(f + k);
    if (!ok) {
      std::fprintf(stderr, "packet %llu: %s, %u bytes\n", static_cast<unsigned long long>(f),
                   libusb_error_name(p.status), p.actual_length);
      ++c->wrong;
    }
  }
  if (c->remaining > 0 && libusb_submit_transfer(t) == 0) {
    --c->remaining;
    return;
  }
  --c->in_flight;
}

}  // namespace

int main(int argc, char** argv) {
  const int transfers = argc > 1 ? std::atoi(argv[1]) : 20;
  const int packets = argc > 2 ? std::atoi(argv[2]) : 32;
  const int depth = argc > 3 ? std::atoi(argv[3]) : 3;
  if (transfers <= 0 || packets <= 0 || depth <= 0) {
    std::fprintf(stderr, "usage: %s [TRANSFERS] [PACKETS_PER_TRANSFER] [DEPTH]\n", argv[0]);
    return 2;
  }
  example::Context ctx = example::init();
  example::Handle h = example::open(ctx.get(), 0x1209, 0x0003);
  example::check(libusb_claim_interface(h.get(), 0), "libusb_claim_interface");
  example::check(libusb_set_interface_alt_setting(h.get(), 0, 1), "alternate setting 1");
  const int packet_size = example::check(
      libusb_get_max_iso_packet_size(libusb_get_device(h.get()), 0x81), "max iso packet size");
  Capture c;
  c.remaining = transfers;
  std::vector<std::vector<unsigned char>> buffers(
      depth, std::vector<unsigned char>(static_cast<std::size_t>(packets * packet_size)));
  std::vector<libusb_transfer*> all;
  for (int i = 0; i < depth && c.remaining > 0; ++i, --c.remaining) {
    libusb_transfer* t = libusb_alloc_transfer(packets);
    libusb_fill_iso_transfer(t, h.get(), 0x81, buffers[i].data(), packets * packet_size, packets,
                             &on_done, &c, 2000);
    libusb_set_iso_packet_lengths(t, static_cast<unsigned>(packet_size));
    example::check(libusb_submit_transfer(t), "libusb_submit_transfer");
    ++c.in_flight;
    all.push_back(t);
  }
  while (c.in_flight > 0) example::check(libusb_handle_events(ctx.get()), "libusb_handle_events");
  for (libusb_transfer* t : all) libusb_free_transfer(t);
  std::printf("iso: %d packets, %d lost on the bus as expected, %d wrong\n", c.packets, c.lost,
              c.wrong);
  libusb_release_interface(h.get(), 0);
  return c.wrong == 0 ? 0 : 1;
}
