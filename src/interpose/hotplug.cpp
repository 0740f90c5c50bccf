#include "interpose/hotplug.h"

#include <algorithm>

#include "interpose/context.h"
#include "interpose/real_libusb.h"
#include "interpose/remote_device.h"

namespace usbnet::interpose {

struct Hotplug::Callback {
  Context* context = nullptr;
  int handle = 0;
  int events = 0;
  int flags = 0;
  int vendor_id = 0;
  int product_id = 0;
  int dev_class = 0;
  libusb_hotplug_callback_fn callback = nullptr;
  void* user_data = nullptr;
  libusb_hotplug_callback_handle real_handle = 0;
  std::atomic<bool> done{false};  // deregistered (its callback returned 1, or the program asked)
};

Hotplug::Hotplug(Context& context, libusb_context* real_context)
    : context_(context), real_(real_context) {}

Hotplug::~Hotplug() {
  std::lock_guard lock(mutex_);
  for (auto& cb : callbacks_) {
    if (real_ && cb->real_handle && !cb->done) {
      real().libusb_hotplug_deregister_callback(real_, cb->real_handle);
    }
  }
}

bool Hotplug::matches(const Callback& cb, RemoteDevice& device, libusb_hotplug_event event) const {
  if (cb.done || !(cb.events & event)) return false;
  if (cb.vendor_id != LIBUSB_HOTPLUG_MATCH_ANY && cb.vendor_id != device.vendor_id()) return false;
  if (cb.product_id != LIBUSB_HOTPLUG_MATCH_ANY && cb.product_id != device.product_id()) {
    return false;
  }
  return cb.dev_class == LIBUSB_HOTPLUG_MATCH_ANY ||
         cb.dev_class == device.info().device_descriptor[4];
}

void Hotplug::run(RemoteDevice& device, libusb_hotplug_event event) {
  std::vector<Callback*> callbacks;
  {
    std::lock_guard lock(mutex_);
    for (auto& cb : callbacks_) callbacks.push_back(cb.get());
  }
  for (Callback* cb : callbacks) {
    {
      std::lock_guard lock(mutex_);
      if (!matches(*cb, device, event)) continue;
    }
    if (cb->callback(context_.as_libusb(), device.as_libusb(), event, cb->user_data) == 1) {
      deregister(cb->handle);
    }
  }
}

int LIBUSB_CALL Hotplug::real_hotplug(libusb_context*, libusb_device* device,
                                      libusb_hotplug_event event, void* record) {
  auto* cb = static_cast<Callback*>(record);
  if (cb->done) return 1;
  const int r = cb->callback(cb->context->as_libusb(), device, event, cb->user_data);
  if (r == 1) cb->done = true;  // the real library drops its registration
  return r;
}

int Hotplug::register_callback(int events, int flags, int vendor_id, int product_id, int dev_class,
                               libusb_hotplug_callback_fn callback, void* user_data,
                               libusb_hotplug_callback_handle* handle) {
  constexpr int kAllEvents = LIBUSB_HOTPLUG_EVENT_DEVICE_ARRIVED | LIBUSB_HOTPLUG_EVENT_DEVICE_LEFT;
  auto in_range = [](int v, int max) {
    return v == LIBUSB_HOTPLUG_MATCH_ANY || (v >= 0 && v <= max);
  };
  if (!callback || events == 0 || (events & ~kAllEvents) != 0 || !in_range(vendor_id, 0xffff) ||
      !in_range(product_id, 0xffff) || !in_range(dev_class, 0xff)) {
    return LIBUSB_ERROR_INVALID_PARAM;
  }
  auto owned = std::make_unique<Callback>();
  owned->context = &context_;
  owned->events = events;
  owned->flags = flags;
  owned->vendor_id = vendor_id;
  owned->product_id = product_id;
  owned->dev_class = dev_class;
  owned->callback = callback;
  owned->user_data = user_data;
  Callback* cb = owned.get();
  {
    std::lock_guard lock(mutex_);
    cb->handle = next_handle_++;
    callbacks_.push_back(std::move(owned));
  }
  if (handle) *handle = cb->handle;
  if (real_) {
    // With ENUMERATE, the real library reports the local devices now, in this thread.
    const int r = real().libusb_hotplug_register_callback(
        real_, static_cast<libusb_hotplug_event>(events), static_cast<libusb_hotplug_flag>(flags),
        vendor_id, product_id, dev_class, &Hotplug::real_hotplug, cb, &cb->real_handle);
    if (r != 0) {
      std::lock_guard lock(mutex_);
      std::erase_if(callbacks_, [cb](const auto& p) { return p.get() == cb; });
      return r;
    }
  }
  // Remote devices: connecting now means their later arrivals and departures are reported.
  const std::vector<RemoteDevice*> present = context_.remote_devices();
  for (RemoteDevice* device : present) {
    const bool report = (flags & LIBUSB_HOTPLUG_ENUMERATE) &&
                        matches(*cb, *device, LIBUSB_HOTPLUG_EVENT_DEVICE_ARRIVED);
    if (report && cb->callback(context_.as_libusb(), device->as_libusb(),
                               LIBUSB_HOTPLUG_EVENT_DEVICE_ARRIVED, user_data) == 1) {
      deregister(cb->handle);
    }
    device->unref();
  }
  return LIBUSB_SUCCESS;
}

void Hotplug::deregister(libusb_hotplug_callback_handle handle) {
  std::unique_ptr<Callback> removed;
  {
    std::lock_guard lock(mutex_);
    auto it = std::find_if(callbacks_.begin(), callbacks_.end(),
                           [handle](const auto& cb) { return cb->handle == handle; });
    if (it == callbacks_.end()) return;
    (*it)->done = true;
    if (real_ && (*it)->real_handle) {
      real().libusb_hotplug_deregister_callback(real_, (*it)->real_handle);
    }
  }
  // The record stays allocated (marked done) until the context ends: a callback being run at
  // this moment on another path may still hold it.
}

void* Hotplug::user_data(libusb_hotplug_callback_handle handle) {
  std::lock_guard lock(mutex_);
  for (const auto& cb : callbacks_) {
    if (cb->handle == handle && !cb->done) return cb->user_data;
  }
  return nullptr;
}

}  // namespace usbnet::interpose
