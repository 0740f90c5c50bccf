// control_demo: control transfers on the loopback device (1209:0001 by default): standard
// requests, a vendor buffer written and read back, a request the device refuses (STALL), and
// one that answers too late (timeout).
//
//   control_demo [VID:PID]
#include <chrono>
#include <cstring>
#include <vector>

#include "example_util.h"

namespace {

// bmRequestType: vendor request to the device, host to device (0x40) or device to host (0xc0).
constexpr std::uint8_t kVendorOut = 0x40;
constexpr std::uint8_t kVendorIn = 0xc0;
constexpr std::uint8_t kWriteBuffer = 0x01, kReadBuffer = 0x02, kAlwaysStall = 0x03, kDelay = 0x04;

int failures = 0;

void report(bool ok, const char* what, const std::string& detail) {
  std::printf("%s %s: %s\n", ok ? "ok  " : "FAIL", what, detail.c_str());
  if (!ok) ++failures;
}

}  // namespace

int main(int argc, char** argv) {
  std::uint16_t vid = 0x1209, pid = 0x0001;
  if (argc > 1 && !example::parse_vid_pid(argv[1], vid, pid)) {
    std::fprintf(stderr, "usage: %s [VID:PID]\n", argv[0]);
    return 2;
  }
  example::Context ctx = example::init();
  example::Handle h = example::open(ctx.get(), vid, pid);

  unsigned char status[2] = {0xff, 0xff};
  int r = libusb_control_transfer(h.get(), LIBUSB_ENDPOINT_IN, LIBUSB_REQUEST_GET_STATUS, 0, 0,
                                  status, sizeof status, 1000);
  report(r == 2, "GET_STATUS",
         r == 2 ? "status 0x" + std::to_string(status[0] | status[1] << 8) : libusb_error_name(r));

  unsigned char raw[18] = {};
  r = libusb_control_transfer(h.get(), LIBUSB_ENDPOINT_IN, LIBUSB_REQUEST_GET_DESCRIPTOR,
                              LIBUSB_DT_DEVICE << 8, 0, raw, sizeof raw, 1000);
  libusb_device_descriptor parsed{};
  libusb_get_device_descriptor(libusb_get_device(h.get()), &parsed);
  const bool same = r == 18 && raw[0] == 18 && raw[1] == LIBUSB_DT_DEVICE &&
                    (raw[8] | raw[9] << 8) == parsed.idVendor &&
                    (raw[10] | raw[11] << 8) == parsed.idProduct;
  report(same, "GET_DESCRIPTOR(DEVICE)",
         same ? "18 bytes, matches the cached descriptor"
              : "differs from libusb_get_device_descriptor");

  unsigned char product[128] = {};
  r = libusb_get_string_descriptor_ascii(h.get(), parsed.iProduct, product, sizeof product);
  report(r > 0, "product string",
         r > 0 ? std::string(reinterpret_cast<char*>(product)) : libusb_error_name(r));

  std::vector<unsigned char> sent(1000), back(4096);
  for (std::size_t i = 0; i < sent.size(); ++i) sent[i] = static_cast<unsigned char>(i * 7 + 3);
  r = libusb_control_transfer(h.get(), kVendorOut, kWriteBuffer, 0, 0, sent.data(),
                              static_cast<std::uint16_t>(sent.size()), 1000);
  int got = libusb_control_transfer(h.get(), kVendorIn, kReadBuffer, 0, 0, back.data(),
                                    static_cast<std::uint16_t>(back.size()), 1000);
  const bool echoed = r == static_cast<int>(sent.size()) && got == static_cast<int>(sent.size()) &&
                      example::crc32(sent.data(), sent.size()) == example::crc32(back.data(), got);
  report(echoed, "vendor WRITE_BUFFER / READ_BUFFER",
         echoed ? "1000 bytes, crc32 matches"
                : std::string("wrote ") + std::to_string(r) + ", read " + std::to_string(got));

  r = libusb_control_transfer(h.get(), kVendorIn, kAlwaysStall, 0, 0, back.data(), 8, 1000);
  report(r == LIBUSB_ERROR_PIPE, "unsupported request",
         std::string("device stalled: ") + libusb_error_name(r));
  r = libusb_control_transfer(h.get(), LIBUSB_ENDPOINT_IN, LIBUSB_REQUEST_GET_STATUS, 0, 0, status,
                              sizeof status, 1000);
  report(r == 2, "after the stall", r == 2 ? "endpoint 0 works again" : libusb_error_name(r));

  const auto start = std::chrono::steady_clock::now();
  r = libusb_control_transfer(h.get(), kVendorIn, kDelay, 1000, 0, back.data(), 4, 100);
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::steady_clock::now() - start)
                      .count();
  report(r == LIBUSB_ERROR_TIMEOUT, "slow request with a 100 ms timeout",
         std::string(libusb_error_name(r)) + " after " + std::to_string(ms) + " ms");

  std::printf("control_demo: %s\n", failures == 0 ? "all checks passed" : "some checks FAILED");
  return failures == 0 ? 0 : 1;
}
