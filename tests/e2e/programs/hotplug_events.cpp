// A plain libusb program that checks hotplug on remote devices: registration with ENUMERATE and
// filters, user data, a device that leaves (its transfer ends with NO_DEVICE, a LEFT event) and
// comes back as a new device (ARRIVED), and deregistration. Exit status: the number of failures.
#include <libusb.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "checks.h"

#include "common/loopback_device.h"

namespace loopback_device = usbnet::loopback_device;

namespace {

using checks::check;
using checks::failures;

struct Seen {
  std::vector<std::string> events;
  libusb_device* loopback = nullptr;  // as last announced
};

int LIBUSB_CALL on_event(libusb_context*, libusb_device* dev, libusb_hotplug_event event,
                         void* user_data) {
  auto* seen = static_cast<Seen*>(user_data);
  libusb_device_descriptor d{};
  libusb_get_device_descriptor(dev, &d);
  char text[64];
  std::snprintf(text, sizeof text, "%s %04x:%04x",
                event == LIBUSB_HOTPLUG_EVENT_DEVICE_ARRIVED ? "arrived" : "left", d.idVendor,
                d.idProduct);
  seen->events.push_back(text);
  if (d.idProduct == 0x0001 && event == LIBUSB_HOTPLUG_EVENT_DEVICE_ARRIVED) seen->loopback = dev;
  return 0;
}

int LIBUSB_CALL once(libusb_context*, libusb_device*, libusb_hotplug_event, void* user_data) {
  ++*static_cast<int*>(user_data);
  return 1;  // deregister after the first event
}

bool wait_for(libusb_context* ctx, const std::vector<std::string>& events, std::size_t count,
              int seconds) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  while (events.size() < count && std::chrono::steady_clock::now() < end) {
    timeval tv{0, 100000};
    libusb_handle_events_timeout_completed(ctx, &tv, nullptr);
  }
  return events.size() >= count;
}

}  // namespace

int main() {
  libusb_context* ctx = nullptr;
  if (libusb_init(&ctx) != 0) return 100;
  check(libusb_has_capability(LIBUSB_CAP_HAS_HOTPLUG) == 1, "hotplug capability");
  Seen seen;
  libusb_hotplug_callback_handle all, filtered, single;
  check(libusb_hotplug_register_callback(
            ctx, LIBUSB_HOTPLUG_EVENT_DEVICE_ARRIVED | LIBUSB_HOTPLUG_EVENT_DEVICE_LEFT,
            LIBUSB_HOTPLUG_ENUMERATE, loopback_device::kVendorId, LIBUSB_HOTPLUG_MATCH_ANY,
            LIBUSB_HOTPLUG_MATCH_ANY, &on_event, &seen, &all) == 0,
        "register with ENUMERATE");
  check(seen.events.size() == 2,
        "ENUMERATE reported the two present devices: " + std::to_string(seen.events.size()));
  check(libusb_hotplug_get_user_data(ctx, all) == &seen, "user data");
  Seen only_mouse;
  check(libusb_hotplug_register_callback(ctx, LIBUSB_HOTPLUG_EVENT_DEVICE_ARRIVED,
                                         LIBUSB_HOTPLUG_ENUMERATE, loopback_device::kVendorId,
                                         0x0002, LIBUSB_HOTPLUG_MATCH_ANY, &on_event, &only_mouse,
                                         &filtered) == 0 &&
            only_mouse.events == std::vector<std::string>{"arrived 1209:0002"},
        "a product filter");
  int fired = 0;
  check(libusb_hotplug_register_callback(ctx, LIBUSB_HOTPLUG_EVENT_DEVICE_ARRIVED,
                                         LIBUSB_HOTPLUG_ENUMERATE, loopback_device::kVendorId,
                                         LIBUSB_HOTPLUG_MATCH_ANY, LIBUSB_HOTPLUG_MATCH_ANY, &once,
                                         &fired, &single) == 0 &&
            fired == 1,
        "a callback that returns 1 runs once");
  check(libusb_hotplug_register_callback(ctx, 0, 0, -1, -1, -1, &on_event, nullptr, nullptr) ==
            LIBUSB_ERROR_INVALID_PARAM,
        "no events is invalid");
  check(
      libusb_hotplug_register_callback(ctx, LIBUSB_HOTPLUG_EVENT_DEVICE_ARRIVED, 0, 0x10000, -1, -1,
                                       &on_event, nullptr, nullptr) == LIBUSB_ERROR_INVALID_PARAM,
      "a vendor id out of range is invalid");

  // The loopback device leaves for 400 ms (its DETACH request), with a read waiting on it.
  libusb_device_handle* h =
      libusb_open_device_with_vid_pid(ctx, loopback_device::kVendorId, loopback_device::kProductId);
  check(h && libusb_claim_interface(h, 0) == 0, "open the loopback device");
  unsigned char buffer[512];
  int status = -1;
  libusb_transfer* waiting = libusb_alloc_transfer(0);
  libusb_fill_bulk_transfer(
      waiting, h, 0x81, buffer, sizeof buffer,
      [](libusb_transfer* t) { *static_cast<int*>(t->user_data) = t->status; }, &status, 0);
  libusb_submit_transfer(waiting);
  check(libusb_control_transfer(h, 0x40, 0x07, 400, 0, nullptr, 0, 1000) == 0, "DETACH request");
  check(wait_for(ctx, seen.events, 3, 5), "a departure event");
  check(seen.events.size() >= 3 && seen.events[2] == "left 1209:0001",
        "it was the loopback device");
  check(status == LIBUSB_TRANSFER_NO_DEVICE, "its transfer ended with NO_DEVICE");
  unsigned char status_bytes[2];
  check(libusb_control_transfer(h, 0x80, 0, 0, 0, status_bytes, 2, 1000) == LIBUSB_ERROR_NO_DEVICE,
        "the old handle answers NO_DEVICE");
  check(wait_for(ctx, seen.events, 4, 5) && seen.events[3] == "arrived 1209:0001", "it came back");
  libusb_device_handle* again = nullptr;
  check(seen.loopback && libusb_open(seen.loopback, &again) == 0 &&
            libusb_control_transfer(again, 0x80, 0, 0, 0, status_bytes, 2, 1000) == 2,
        "the new device works");
  if (again) libusb_close(again);
  libusb_free_transfer(waiting);
  libusb_close(h);

  libusb_hotplug_deregister_callback(ctx, all);
  libusb_hotplug_deregister_callback(ctx, filtered);
  check(libusb_hotplug_get_user_data(ctx, all) == nullptr, "deregistered");
  libusb_exit(ctx);
  std::printf("hotplug: %d failures\n", failures);
  return failures;
}
