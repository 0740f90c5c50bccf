// Event handling, pollfds and hotplug. Calls on the shim's contexts (and NULL, the default
// context) are served by the shim's event loop; calls with the real library's own context come
// from its internals and go straight back to it.
#include <cstdlib>

#include "interpose/api.h"
#include "interpose/objects.h"

using namespace usbnet::interpose;

namespace {

// Runs `ours` on the shim's context, or `theirs` with the real library's own context.
template <typename Ours, typename Theirs>
auto dispatch(libusb_context* ctx, Ours&& ours, Theirs&& theirs) {
  if (ctx && !Context::from(ctx)) return theirs(ctx);
  Context* context = our_context(ctx);
  if (!context) return theirs(ctx);
  return ours(*context);
}

}  // namespace

USBNET_EXPORT int libusb_try_lock_events(libusb_context* ctx) {
  return dispatch(
      ctx, [](Context& c) { return c.events().try_lock_events(); },
      [](libusb_context* r) { return real().libusb_try_lock_events(r); });
}

USBNET_EXPORT void libusb_lock_events(libusb_context* ctx) {
  dispatch(
      ctx, [](Context& c) { c.events().lock_events(); },
      [](libusb_context* r) { real().libusb_lock_events(r); });
}

USBNET_EXPORT void libusb_unlock_events(libusb_context* ctx) {
  dispatch(
      ctx, [](Context& c) { c.events().unlock_events(); },
      [](libusb_context* r) { real().libusb_unlock_events(r); });
}

USBNET_EXPORT int libusb_event_handling_ok(libusb_context* ctx) {
  return dispatch(
      ctx, [](Context& c) { return c.events().event_handling_ok(); },
      [](libusb_context* r) { return real().libusb_event_handling_ok(r); });
}

USBNET_EXPORT int libusb_event_handler_active(libusb_context* ctx) {
  return dispatch(
      ctx, [](Context& c) { return c.events().event_handler_active(); },
      [](libusb_context* r) { return real().libusb_event_handler_active(r); });
}

USBNET_EXPORT void libusb_interrupt_event_handler(libusb_context* ctx) {
  dispatch(
      ctx, [](Context& c) { c.events().interrupt_event_handler(); },
      [](libusb_context* r) { real().libusb_interrupt_event_handler(r); });
}

USBNET_EXPORT void libusb_lock_event_waiters(libusb_context* ctx) {
  dispatch(
      ctx, [](Context& c) { c.events().lock_event_waiters(); },
      [](libusb_context* r) { real().libusb_lock_event_waiters(r); });
}

USBNET_EXPORT void libusb_unlock_event_waiters(libusb_context* ctx) {
  dispatch(
      ctx, [](Context& c) { c.events().unlock_event_waiters(); },
      [](libusb_context* r) { real().libusb_unlock_event_waiters(r); });
}

USBNET_EXPORT int libusb_wait_for_event(libusb_context* ctx, struct timeval* tv) {
  return dispatch(
      ctx, [tv](Context& c) { return c.events().wait_for_event(tv); },
      [tv](libusb_context* r) { return real().libusb_wait_for_event(r, tv); });
}

USBNET_EXPORT int libusb_handle_events_timeout_completed(libusb_context* ctx, struct timeval* tv,
                                                         int* completed) {
  return dispatch(
      ctx,
      [&](Context& c) {
        return guarded(int{LIBUSB_ERROR_NO_MEM},
                       [&] { return c.events().handle_events_timeout_completed(tv, completed); });
      },
      [&](libusb_context* r) {
        return real().libusb_handle_events_timeout_completed(r, tv, completed);
      });
}

USBNET_EXPORT int libusb_handle_events_timeout(libusb_context* ctx, struct timeval* tv) {
  return libusb_handle_events_timeout_completed(ctx, tv, nullptr);
}

USBNET_EXPORT int libusb_handle_events(libusb_context* ctx) {
  timeval tv{60, 0};  // libusb's blocking calls wait at most 60 s per round
  return libusb_handle_events_timeout_completed(ctx, &tv, nullptr);
}

USBNET_EXPORT int libusb_handle_events_completed(libusb_context* ctx, int* completed) {
  timeval tv{60, 0};
  return libusb_handle_events_timeout_completed(ctx, &tv, completed);
}

USBNET_EXPORT int libusb_handle_events_locked(libusb_context* ctx, struct timeval* tv) {
  return dispatch(
      ctx,
      [&](Context& c) {
        return guarded(int{LIBUSB_ERROR_NO_MEM},
                       [&] { return c.events().handle_events_locked(tv); });
      },
      [&](libusb_context* r) { return real().libusb_handle_events_locked(r, tv); });
}

USBNET_EXPORT int libusb_get_next_timeout(libusb_context* ctx, struct timeval* tv) {
  return dispatch(
      ctx, [tv](Context& c) { return c.events().get_next_timeout(tv); },
      [tv](libusb_context* r) { return real().libusb_get_next_timeout(r, tv); });
}

USBNET_EXPORT int libusb_pollfds_handle_timeouts(libusb_context* ctx) {
  return dispatch(
      ctx, [](Context& c) { return c.events().pollfds_handle_timeouts(); },
      [](libusb_context* r) { return real().libusb_pollfds_handle_timeouts(r); });
}

USBNET_EXPORT const struct libusb_pollfd** libusb_get_pollfds(libusb_context* ctx) {
  return dispatch(
      ctx,
      [](Context& c) {
        return guarded<const libusb_pollfd**>(nullptr, [&] { return c.events().get_pollfds(); });
      },
      [](libusb_context* r) { return real().libusb_get_pollfds(r); });
}

USBNET_EXPORT void libusb_free_pollfds(const struct libusb_pollfd** pollfds) {
  if (!pollfds) return;
  if (allocations().remove(pollfds)) {
    std::free(pollfds);
    return;
  }
  real().libusb_free_pollfds(pollfds);
}

USBNET_EXPORT void libusb_set_pollfd_notifiers(libusb_context* ctx, libusb_pollfd_added_cb added_cb,
                                               libusb_pollfd_removed_cb removed_cb,
                                               void* user_data) {
  dispatch(
      ctx, [&](Context& c) { c.events().set_pollfd_notifiers(added_cb, removed_cb, user_data); },
      [&](libusb_context* r) {
        real().libusb_set_pollfd_notifiers(r, added_cb, removed_cb, user_data);
      });
}

USBNET_EXPORT int libusb_hotplug_register_callback(
    libusb_context* ctx, int events, int flags, int vendor_id, int product_id, int dev_class,
    libusb_hotplug_callback_fn cb_fn, void* user_data,
    libusb_hotplug_callback_handle* callback_handle) {
  return dispatch(
      ctx,
      [&](Context& c) {
        return guarded(int{LIBUSB_ERROR_NO_MEM}, [&] {
          return c.hotplug().register_callback(events, flags, vendor_id, product_id, dev_class,
                                               cb_fn, user_data, callback_handle);
        });
      },
      [&](libusb_context* r) {
        return real().libusb_hotplug_register_callback(
            r, events, flags, vendor_id, product_id, dev_class, cb_fn, user_data, callback_handle);
      });
}

USBNET_EXPORT void libusb_hotplug_deregister_callback(libusb_context* ctx,
                                                      libusb_hotplug_callback_handle handle) {
  dispatch(
      ctx, [handle](Context& c) { guarded_void([&] { c.hotplug().deregister(handle); }); },
      [handle](libusb_context* r) { real().libusb_hotplug_deregister_callback(r, handle); });
}

USBNET_EXPORT void* libusb_hotplug_get_user_data(libusb_context* ctx,
                                                 libusb_hotplug_callback_handle handle) {
  return dispatch(
      ctx, [handle](Context& c) { return c.hotplug().user_data(handle); },
      [handle](libusb_context* r) { return real().libusb_hotplug_get_user_data(r, handle); });
}
