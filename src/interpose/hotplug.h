// A context's hotplug callbacks (libusb's hotplug.c): each is registered with the real library
// too, which reports local devices; remote arrivals and departures come from the agents as
// events that the event loop hands to run(), so that every callback runs in the thread that
// handles events.
#pragma once

#include <libusb.h>

#include <memory>
#include <mutex>
#include <vector>

namespace usbnet::interpose {

class Context;
class RemoteDevice;

class Hotplug {
 public:
  // `real_context` may be null (only remote devices).
  Hotplug(Context& context, libusb_context* real_context);
  ~Hotplug();
  Hotplug(const Hotplug&) = delete;
  Hotplug& operator=(const Hotplug&) = delete;

  int register_callback(int events, int flags, int vendor_id, int product_id, int dev_class,
                        libusb_hotplug_callback_fn callback, void* user_data,
                        libusb_hotplug_callback_handle* handle);
  void deregister(libusb_hotplug_callback_handle handle);
  void* user_data(libusb_hotplug_callback_handle handle);
  // Runs the callbacks a remote device's arrival or departure concerns (event-handling thread).
  void run(RemoteDevice& device, libusb_hotplug_event event);

 private:
  struct Callback;
  bool matches(const Callback& cb, RemoteDevice& device, libusb_hotplug_event event) const;
  static int LIBUSB_CALL real_hotplug(libusb_context* ctx, libusb_device* device,
                                      libusb_hotplug_event event, void* record);

  Context& context_;
  libusb_context* real_;
  std::mutex mutex_;
  std::vector<std::unique_ptr<Callback>> callbacks_;
  int next_handle_ = 1;
};

}  // namespace usbnet::interpose
