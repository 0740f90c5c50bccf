// Reads input reports from a USB HID boot device (keyboard or mouse) over its interrupt IN
// endpoint, after checking its HID descriptor, fetching its report descriptor and exercising
// the class requests SET_IDLE and GET_IDLE. Prints "listening" once it waits for reports, then
// one line per report ("report: 00 05 fd 00"); exits 0 after COUNT reports, 1 if SECONDS pass
// first.
//
//   hid_reports VID:PID keyboard|mouse COUNT SECONDS
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "lab_util.h"

namespace {

constexpr int kTimeoutMs = 5000;
constexpr std::uint8_t kHidDescriptor = 0x21, kReportDescriptor = 0x22;
constexpr std::uint8_t kGetIdle = 0x02, kSetIdle = 0x0a;
// bmRequestType: direction | type | recipient.
constexpr std::uint8_t kStandardIn = 0x81, kClassOut = 0x21, kClassIn = 0xa1;

std::string hex(const unsigned char* data, int n) {
  std::string text;
  for (int i = 0; i < n; ++i) {
    char b[4];
    std::snprintf(b, sizeof b, "%s%02x", i ? " " : "", data[i]);
    text += b;
  }
  return text;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 5 || (std::strcmp(argv[2], "keyboard") != 0 && std::strcmp(argv[2], "mouse") != 0)) {
    std::fprintf(stderr, "usage: hid_reports VID:PID keyboard|mouse COUNT SECONDS\n");
    return 2;
  }
  std::uint16_t vid, pid;
  lab::parse_vid_pid(argv[1], vid, pid);
  const int protocol = std::strcmp(argv[2], "keyboard") == 0 ? 1 : 2;
  const int count = std::stoi(argv[3]);
  const int seconds = std::stoi(argv[4]);

  lab::Context ctx = lab::init();
  lab::Interface usb = lab::open_interface(ctx.get(), vid, pid, LIBUSB_CLASS_HID, protocol);
  libusb_device_handle* h = usb.handle.get();
  const auto iface = static_cast<std::uint16_t>(usb.number);
  if (!usb.interrupt_in) lab::fail("no interrupt IN endpoint");

  // The HID descriptor follows the interface descriptor; it gives the report descriptor's size.
  const unsigned char* extra = usb.descriptor->extra;
  if (usb.descriptor->extra_length < 9 || extra[1] != kHidDescriptor ||
      extra[6] != kReportDescriptor) {
    lab::fail("no HID descriptor after the interface descriptor");
  }
  const int report_length = extra[7] | (extra[8] << 8);
  std::vector<unsigned char> report(static_cast<std::size_t>(report_length) + 16);
  const int got =
      lab::check(libusb_control_transfer(h, kStandardIn, LIBUSB_REQUEST_GET_DESCRIPTOR,
                                         kReportDescriptor << 8, iface, report.data(),
                                         static_cast<std::uint16_t>(report.size()), kTimeoutMs),
                 "GET_DESCRIPTOR(report)");
  std::printf("HID %s, report descriptor: %d bytes (HID descriptor says %d)\n", argv[2], got,
              report_length);
  if (got != report_length) lab::fail("the report descriptor's length differs");

  // SET_IDLE with a duration, read it back, then 0: report only on change, so every report
  // read below was caused by an input event.
  lab::check(
      libusb_control_transfer(h, kClassOut, kSetIdle, 0x7d << 8, iface, nullptr, 0, kTimeoutMs),
      "SET_IDLE");
  unsigned char idle = 0;
  lab::check(libusb_control_transfer(h, kClassIn, kGetIdle, 0, iface, &idle, 1, kTimeoutMs),
             "GET_IDLE");
  std::printf("GET_IDLE after SET_IDLE(0x7d): 0x%02x\n", idle);
  if (idle != 0x7d) lab::fail("GET_IDLE did not return what SET_IDLE set");
  lab::check(libusb_control_transfer(h, kClassOut, kSetIdle, 0, iface, nullptr, 0, kTimeoutMs),
             "SET_IDLE(0)");

  std::printf("listening\n");
  std::fflush(stdout);
  const auto start = std::chrono::steady_clock::now();
  int reports = 0;
  std::vector<unsigned char> data(usb.interrupt_in_size);
  while (reports < count && lab::seconds_since(start) < seconds) {
    int n = 0;
    const int r = libusb_interrupt_transfer(h, usb.interrupt_in, data.data(),
                                            static_cast<int>(data.size()), &n, 500);
    if (r == LIBUSB_ERROR_TIMEOUT) continue;
    lab::check(r, "interrupt transfer");
    std::printf("report: %s\n", hex(data.data(), n).c_str());
    std::fflush(stdout);
    ++reports;
  }
  if (reports < count) {
    std::fprintf(stderr, "only %d of %d reports in %d s\n", reports, count, seconds);
    return 1;
  }
  return 0;
}
