// A plain libusb program that checks libusb's documented semantics on the simulated devices
// (loopback 1209:0001, mouse 1209:0002, audio 1209:0003). It knows nothing of usbnet: run under
// LD_PRELOAD it checks the shim; each check prints one line, and the exit status is the number
// of failures.
#include <libusb.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "checks.h"

#include "common/loopback_device.h"

namespace loopback_device = usbnet::loopback_device;

namespace {

using checks::check;
using checks::failures;

std::string name(int r) { return libusb_error_name(r); }

libusb_device* find(libusb_device** list, std::uint16_t pid) {
  for (libusb_device** d = list; *d; ++d) {
    libusb_device_descriptor desc{};
    libusb_get_device_descriptor(*d, &desc);
    if (desc.idVendor == loopback_device::kVendorId && desc.idProduct == pid) return *d;
  }
  return nullptr;
}

long long ms_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                               start)
      .count();
}

void device_properties(libusb_device* dev) {
  check(libusb_get_bus_number(dev) >= 201,
        "remote bus number " + std::to_string(libusb_get_bus_number(dev)));
  std::uint8_t ports[7];
  check(libusb_get_port_numbers(dev, ports, 7) == 1 && ports[0] == 1, "port numbers");
  check(libusb_get_port_numbers(dev, ports, 0) == LIBUSB_ERROR_INVALID_PARAM,
        "port numbers, no room");
  check(libusb_get_device_speed(dev) == LIBUSB_SPEED_HIGH, "speed");
  libusb_device* hub = libusb_get_parent(dev);
  libusb_device_descriptor hub_desc{};
  check(hub && libusb_get_device_descriptor(hub, &hub_desc) == 0 &&
            hub_desc.bDeviceClass == LIBUSB_CLASS_HUB &&
            libusb_get_bus_number(hub) == libusb_get_bus_number(dev) &&
            libusb_get_port_numbers(hub, ports, 7) == 0 && libusb_get_parent(hub) == nullptr,
        "parent: the root hub of its bus");
  check(libusb_get_max_packet_size(dev, 0x81) == 512, "max packet size");
  check(libusb_get_max_packet_size(dev, 0x85) == LIBUSB_ERROR_NOT_FOUND,
        "max packet size, no endpoint");
  check(libusb_get_max_iso_packet_size(dev, 0x83) == 64, "max iso packet size of interrupt ep");
  libusb_config_descriptor* config = nullptr;
  check(libusb_get_active_config_descriptor(dev, &config) == 0 && config->bNumInterfaces == 1 &&
            config->interface[0].altsetting[0].bNumEndpoints == 6,
        "active configuration descriptor");
  libusb_free_config_descriptor(config);
  check(libusb_get_config_descriptor(dev, 1, &config) == LIBUSB_ERROR_NOT_FOUND,
        "configuration index out of range");
  check(libusb_get_config_descriptor_by_value(dev, 1, &config) == 0 &&
            config->bConfigurationValue == 1,
        "configuration by value");
  libusb_free_config_descriptor(config);
  check(libusb_ref_device(dev) == dev, "ref");
  libusb_unref_device(dev);
}

void loopback(libusb_context* ctx, libusb_device_handle* h) {
  unsigned char buffer[4096];
  int n = 0;
  check(libusb_kernel_driver_active(h, 0) == 0, "no kernel driver");
  check(libusb_detach_kernel_driver(h, 0) == LIBUSB_ERROR_NOT_FOUND, "detach without a driver");
  check(libusb_set_auto_detach_kernel_driver(h, 1) == 0, "auto detach");
  check(libusb_claim_interface(h, 0) == 0, "claim");
  check(libusb_claim_interface(h, 0) == 0, "claim again");
  check(libusb_claim_interface(h, 40) == LIBUSB_ERROR_INVALID_PARAM, "claim out of range");
  check(libusb_set_interface_alt_setting(h, 0, 3) == LIBUSB_ERROR_NOT_FOUND, "missing alt setting");
  int config = -1;
  check(libusb_get_configuration(h, &config) == 0 && config == 1, "configuration");
  check(libusb_set_configuration(h, 1) == LIBUSB_ERROR_BUSY, "set configuration while claimed");

  unsigned char reset[1];
  libusb_control_transfer(h, 0x40, 0x06, 0, 0, reset, 0, 1000);

  // Timeout honoured, with nothing transferred.
  auto start = std::chrono::steady_clock::now();
  int r = libusb_bulk_transfer(h, 0x81, buffer, 512, &n, 100);
  const long long waited = ms_since(start);
  check(r == LIBUSB_ERROR_TIMEOUT && n == 0 && waited >= 95 && waited < 5000,
        "bulk IN timeout: " + name(r) + " after " + std::to_string(waited) + " ms");

  // Overflow: 100 bytes waiting, a 10-byte buffer.
  std::memset(buffer, 0x5a, 100);
  r = libusb_bulk_transfer(h, 0x01, buffer, 100, &n, 1000);
  check(r == 0 && n == 100, "bulk OUT 100 bytes");
  r = libusb_bulk_transfer(h, 0x81, buffer, 10, &n, 1000);
  check(r == LIBUSB_ERROR_OVERFLOW, "overflow: " + name(r));

  // Zero-length packets.
  r = libusb_bulk_transfer(h, 0x01, buffer, 0, &n, 1000);
  check(r == 0 && n == 0, "zero-length OUT");
  r = libusb_bulk_transfer(h, 0x81, buffer, 512, &n, 1000);
  check(r == 0 && n == 0, "zero-length IN");

  // STALL and clear halt.
  r = libusb_control_transfer(h, 0x02, LIBUSB_REQUEST_SET_FEATURE, 0, 0x82, nullptr, 0, 1000);
  check(r == 0, "SET_FEATURE(ENDPOINT_HALT)");
  r = libusb_bulk_transfer(h, 0x82, buffer, 512, &n, 1000);
  check(r == LIBUSB_ERROR_PIPE, "halted endpoint: " + name(r));
  check(libusb_clear_halt(h, 0x82) == 0, "clear halt");
  r = libusb_bulk_transfer(h, 0x82, buffer, 512, &n, 1000);
  check(r == 0 && n == 512 && buffer[1] == 1 && buffer[250] == 250, "source after clear halt");

  // Control: stall, data, timeout with the partial length.
  errno = EINVAL;
  r = libusb_control_transfer(h, 0xc0, 0x03, 0, 0, buffer, 8, 1000);
  check(r == LIBUSB_ERROR_PIPE, "vendor stall: " + name(r));
  // Not a promise of libusb's, but what its Linux backend leaves, and Debian's lsusb tells an
  // optional descriptor's STALL from an error by it.
  check(errno == EAGAIN,
        std::string("errno after the stall, as libusb leaves it: ") + std::strerror(errno));
  r = libusb_control_transfer(h, 0xc0, 0x04, 0, 0, buffer, 300, 1000);
  check(r == 300 && buffer[0] == 0 && buffer[299] == loopback_device::pattern_byte(299),
        "delayed IN with data");
  r = libusb_control_transfer(h, 0x80, LIBUSB_REQUEST_GET_DESCRIPTOR, 0x0100, 0, buffer, 64, 1000);
  check(r == 18, "short descriptor read returns 18");

  // String descriptors.
  unsigned char text[64];
  r = libusb_get_string_descriptor_ascii(h, 2, text, sizeof text);
  check(r == 8 && std::string(reinterpret_cast<char*>(text)) == "Loopback", "product string");
  r = libusb_get_string_descriptor_ascii(h, 2, text, 5);
  check(r == 4 && std::string(reinterpret_cast<char*>(text)) == "Loop", "string cut to the buffer");
  r = libusb_get_string_descriptor_ascii(h, 0, text, sizeof text);
  check(r == LIBUSB_ERROR_INVALID_PARAM, "string 0");

  // BOS.
  libusb_bos_descriptor* bos = nullptr;
  r = libusb_get_bos_descriptor(h, &bos);
  check(r == 0 && bos->bNumDeviceCaps == 2 &&
            bos->dev_capability[0]->bDevCapabilityType == LIBUSB_BT_USB_2_0_EXTENSION,
        "BOS descriptor");
  libusb_usb_2_0_extension_descriptor* ext = nullptr;
  if (bos) {
    check(libusb_get_usb_2_0_extension_descriptor(ctx, bos->dev_capability[0], &ext) == 0 &&
              ext->bmAttributes == 2,
          "USB 2.0 extension");
    libusb_free_usb_2_0_extension_descriptor(ext);
  }
  libusb_free_bos_descriptor(bos);

  // Async transfer with SHORT_NOT_OK: a short read is an error.
  r = libusb_bulk_transfer(h, 0x01, buffer, 20, &n, 1000);
  libusb_transfer* t = libusb_alloc_transfer(0);
  int done = 0;
  libusb_fill_bulk_transfer(
      t, h, 0x81, buffer, 512, [](libusb_transfer* x) { *static_cast<int*>(x->user_data) = 1; },
      &done, 1000);
  t->flags = LIBUSB_TRANSFER_SHORT_NOT_OK;
  check(libusb_submit_transfer(t) == 0, "async submit");
  check(libusb_submit_transfer(t) == LIBUSB_ERROR_BUSY, "resubmit while in flight");
  while (!done) libusb_handle_events_completed(ctx, &done);
  check(t->status == LIBUSB_TRANSFER_ERROR && t->actual_length == 20, "SHORT_NOT_OK");
  check(libusb_cancel_transfer(t) == LIBUSB_ERROR_NOT_FOUND, "cancel after completion");
  libusb_free_transfer(t);

  check(libusb_release_interface(h, 0) == 0, "release");
  check(libusb_release_interface(h, 0) == LIBUSB_ERROR_NOT_FOUND, "release again");
  check(libusb_set_configuration(h, 1) == 0, "set configuration");
  check(libusb_reset_device(h) == 0, "reset");
}

void mouse(libusb_device_handle* h) {
  unsigned char report[8];
  int n = 0;
  check(libusb_claim_interface(h, 0) == 0, "claim the mouse");
  int r = libusb_interrupt_transfer(h, 0x81, report, 4, &n, 1000);
  check(r == 0 && n == 4 && report[0] == 1 && report[1] == 4, "first mouse report");
  r = libusb_interrupt_transfer(h, 0x81, report, 4, &n, 1000);
  check(r == 0 && n == 4 && report[0] == 0 && report[1] == 4, "second mouse report");
  r = libusb_control_transfer(h, 0x21, 0x0b, 0, 0, nullptr, 0, 1000);  // SET_PROTOCOL(boot)
  check(r == 0, "SET_PROTOCOL");
  r = libusb_control_transfer(h, 0xa1, 0x03, 0, 0, report, 1, 1000);  // GET_PROTOCOL
  check(r == 1 && report[0] == 0, "GET_PROTOCOL");
}

void audio(libusb_device* dev, libusb_device_handle* h) {
  check(libusb_claim_interface(h, 0) == 0, "claim audio");
  check(libusb_set_interface_alt_setting(h, 0, 1) == 0, "alt setting 1");
  check(libusb_get_max_iso_packet_size(dev, 0x81) == 192, "max iso packet size");
  // libusb 1.0.26 finds endpoints in any alternate setting of the active configuration.
  check(libusb_get_max_iso_packet_size(dev, 0x01) == 192, "iso OUT packet size");
}

}  // namespace

int main() {
  libusb_context* ctx = nullptr;
  if (libusb_init(&ctx) != 0) return 100;
  libusb_device** list = nullptr;
  const ssize_t count = libusb_get_device_list(ctx, &list);
  check(count >= 3, "device list has the simulated devices: " + std::to_string(count));
  libusb_device* lb = find(list, 0x0001);
  libusb_device* ms = find(list, 0x0002);
  libusb_device* au = find(list, 0x0003);
  if (!lb || !ms || !au) {
    std::printf("FAIL simulated devices not found\n");
    return 100;
  }
  device_properties(lb);
  libusb_device_handle* h =
      libusb_open_device_with_vid_pid(ctx, loopback_device::kVendorId, loopback_device::kProductId);
  check(h != nullptr, "open by VID:PID");
  check(h && libusb_get_device(h) == lb, "the handle's device is the listed one");
  if (h) {
    loopback(ctx, h);
    libusb_close(h);
  }
  if (libusb_open(ms, &h) == 0) {
    mouse(h);
    libusb_close(h);
  }
  if (libusb_open(au, &h) == 0) {
    audio(au, h);
    libusb_close(h);
  }
  libusb_free_device_list(list, 1);
  libusb_exit(ctx);
  std::printf("%d failure%s\n", failures, failures == 1 ? "" : "s");
  return failures;
}
