// hotplug_monitor: prints every USB device that arrives or leaves, starting with those present
// (LIBUSB_HOTPLUG_ENUMERATE), until SECONDS have passed or COUNT events were seen.
//
//   hotplug_monitor [SECONDS] [COUNT] [VID:PID]
#include <chrono>
#include <csignal>
#include <cstring>

#include "example_util.h"

namespace {

int events = 0;

int LIBUSB_CALL on_hotplug(libusb_context*, libusb_device* dev, libusb_hotplug_event event, void*) {
  libusb_device_descriptor d{};
  libusb_get_device_descriptor(dev, &d);
  std::printf("%s %04x:%04x bus %03u device %03u\n",
              event == LIBUSB_HOTPLUG_EVENT_DEVICE_ARRIVED ? "arrived" : "left   ", d.idVendor,
              d.idProduct, libusb_get_bus_number(dev), libusb_get_device_address(dev));
  std::fflush(stdout);
  ++events;
  return 0;  // stay registered
}

}  // namespace

int main(int argc, char** argv) {
  const int seconds = argc > 1 ? std::atoi(argv[1]) : 30;
  const int count = argc > 2 ? std::atoi(argv[2]) : 0;
  std::uint16_t vid = 0, pid = 0;
  const bool filter = argc > 3;
  if (seconds <= 0 || (filter && !example::parse_vid_pid(argv[3], vid, pid))) {
    std::fprintf(stderr, "usage: %s [SECONDS] [COUNT] [VID:PID]\n", argv[0]);
    return 2;
  }
  if (!libusb_has_capability(LIBUSB_CAP_HAS_HOTPLUG)) {
    std::fprintf(stderr, "this libusb has no hotplug support\n");
    return 1;
  }
  example::Context ctx = example::init();
  libusb_hotplug_callback_handle handle;
  example::check(
      libusb_hotplug_register_callback(
          ctx.get(), LIBUSB_HOTPLUG_EVENT_DEVICE_ARRIVED | LIBUSB_HOTPLUG_EVENT_DEVICE_LEFT,
          LIBUSB_HOTPLUG_ENUMERATE, filter ? vid : LIBUSB_HOTPLUG_MATCH_ANY,
          filter ? pid : LIBUSB_HOTPLUG_MATCH_ANY, LIBUSB_HOTPLUG_MATCH_ANY, &on_hotplug, nullptr,
          &handle),
      "libusb_hotplug_register_callback");
  std::printf("watching\n");
  std::fflush(stdout);
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  while (std::chrono::steady_clock::now() < end && (count == 0 || events < count)) {
    timeval tv{0, 200000};
    example::check(libusb_handle_events_timeout_completed(ctx.get(), &tv, nullptr),
                   "libusb_handle_events");
  }
  libusb_hotplug_deregister_callback(ctx.get(), handle);
  std::printf("%d events\n", events);
  return 0;
}
