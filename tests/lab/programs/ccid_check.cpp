// Talks to a USB smart-card reader (CCID) without a card: its class descriptor, as libusb
// parsed it and as GET_DESCRIPTOR returns it, the class requests GET_CLOCK_FREQUENCIES and
// GET_DATA_RATES, and two commands over bulk: PC_to_RDR_GetSlotStatus and
// PC_to_RDR_IccPowerOn. Prints what it gets in a form that is the same wherever the program
// runs, so two runs can be compared line by line. Exit status 1 if a reply is malformed.
//
//   ccid_check VID:PID
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "lab_util.h"

namespace {

constexpr int kTimeoutMs = 5000;
constexpr std::uint8_t kCcidDescriptor = 0x21;
constexpr std::uint8_t kGetSlotStatus = 0x65, kIccPowerOn = 0x62;
constexpr std::uint8_t kSlotStatus = 0x81, kDataBlock = 0x80;

std::string hex(const unsigned char* data, int n) {
  std::string text;
  for (int i = 0; i < n; ++i) {
    char b[4];
    std::snprintf(b, sizeof b, "%s%02x", i ? " " : "", data[i]);
    text += b;
  }
  return text;
}

// A class request to the interface: prints the reply or the error libusb reports (a reader
// may STALL requests it does not support: that is LIBUSB_ERROR_PIPE, here and remotely).
void class_request(libusb_device_handle* h, std::uint16_t iface, std::uint8_t request,
                   const char* name) {
  unsigned char data[64] = {};
  constexpr std::uint8_t kClassInInterface = 0xa1;  // bmRequestType: IN | class | interface
  const int r = libusb_control_transfer(h, kClassInInterface, request, 0, iface, data, sizeof data,
                                        kTimeoutMs);
  std::printf("%s: %s\n", name, r < 0 ? libusb_error_name(r) : hex(data, r).c_str());
}

// Sends one 10-byte command and reads the reader's reply.
std::vector<unsigned char> bulk_command(lab::Interface& usb, std::uint8_t type, std::uint8_t seq) {
  unsigned char command[10] = {type, 0, 0, 0, 0, /*slot*/ 0, seq, 0, 0, 0};
  int n = 0;
  lab::check(
      libusb_bulk_transfer(usb.handle.get(), usb.bulk_out, command, sizeof command, &n, kTimeoutMs),
      "bulk OUT");
  std::vector<unsigned char> reply(512);
  lab::check(libusb_bulk_transfer(usb.handle.get(), usb.bulk_in, reply.data(),
                                  static_cast<int>(reply.size()), &n, kTimeoutMs),
             "bulk IN");
  reply.resize(static_cast<std::size_t>(n));
  if (n < 10 || reply[5] != 0 || reply[6] != seq)
    lab::fail("a malformed reply: " + hex(reply.data(), n));
  return reply;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: ccid_check VID:PID\n");
    return 2;
  }
  std::uint16_t vid, pid;
  lab::parse_vid_pid(argv[1], vid, pid);
  lab::Context ctx = lab::init();
  lab::Interface usb = lab::open_interface(ctx.get(), vid, pid, LIBUSB_CLASS_SMART_CARD);
  libusb_device_handle* h = usb.handle.get();
  if (!usb.bulk_in || !usb.bulk_out) lab::fail("no bulk endpoints");

  const unsigned char* extra = usb.descriptor->extra;
  const int extra_length = usb.descriptor->extra_length;
  if (extra_length < 0x36 || extra[0] != 0x36 || extra[1] != kCcidDescriptor) {
    lab::fail("no CCID class descriptor after the interface descriptor");
  }
  std::printf("CCID class descriptor: %s\n", hex(extra, 0x36).c_str());
  std::printf("bcdCCID %x.%02x, bMaxSlotIndex %u, dwMaxCCIDMessageLength %u\n", extra[3], extra[2],
              extra[4], extra[44] | (extra[45] << 8) | (extra[46] << 16) | (extra[47] << 24));

  // The same bytes, asked of the device: the whole configuration descriptor.
  unsigned char config[512] = {};
  const int n = lab::check(libusb_get_descriptor(h, LIBUSB_DT_CONFIG, 0, config, sizeof config),
                           "GET_DESCRIPTOR(configuration)");
  bool same = false;
  for (int i = 0; i + 0x36 <= n && !same; i += config[i] ? config[i] : n) {
    same = config[i + 1] == kCcidDescriptor && std::memcmp(config + i, extra, 0x36) == 0;
  }
  std::printf("GET_DESCRIPTOR(configuration), %d bytes: class descriptor %s\n", n,
              same ? "identical" : "MISSING OR DIFFERENT");
  if (!same) return 1;

  class_request(h, static_cast<std::uint16_t>(usb.number), 0x02, "GET_CLOCK_FREQUENCIES");
  class_request(h, static_cast<std::uint16_t>(usb.number), 0x03, "GET_DATA_RATES");

  const auto status = bulk_command(usb, kGetSlotStatus, 1);
  std::printf("PC_to_RDR_GetSlotStatus -> %s\n",
              hex(status.data(), static_cast<int>(status.size())).c_str());
  if (status[0] != kSlotStatus) lab::fail("GetSlotStatus: not an RDR_to_PC_SlotStatus reply");
  const auto power = bulk_command(usb, kIccPowerOn, 2);
  std::printf("PC_to_RDR_IccPowerOn    -> %s\n",
              hex(power.data(), static_cast<int>(power.size())).c_str());
  if (power[0] != kDataBlock) lab::fail("IccPowerOn: not an RDR_to_PC_DataBlock reply");
  std::printf("card reader ok\n");
  return 0;
}
