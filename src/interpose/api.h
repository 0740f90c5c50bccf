// Shared by the exported functions: telling the shim's objects from the real library's, the
// default context, a guard that keeps C++ exceptions from crossing the C ABI, and dispatch(),
// the one way from an export to the real library or the remote backend.
#pragma once

#include <libusb.h>

#include <exception>
#include <type_traits>

#include "common/log.h"
#include "interpose/context.h"
#include "interpose/real_libusb.h"
#include "interpose/remote_device.h"

#define USBNET_EXPORT extern "C" __attribute__((visibility("default")))

namespace usbnet::interpose {

// The context a call is about: ours for NULL (the default context) or one of ours; nullptr
// when `ctx` is the real library's own (its internals call the shim's exports with it).
Context* our_context(libusb_context* ctx);
// The real library's context to use for `ctx` (ours, NULL, or already real).
libusb_context* real_context_of(libusb_context* ctx);

// The default context (NULL in libusb's API): created by libusb_init(NULL), reference-counted.
int init_default_context();
void exit_default_context();
void destroy_context(Context* context);  // and the real context it wraps

// Runs `body`; an exception (out of memory, above all) becomes `failure` and a log line.
template <typename Result, typename Body>
Result guarded(Result failure, Body&& body) noexcept {
  try {
    return body();
  } catch (const std::bad_alloc&) {
    log::error("out of memory");
  } catch (const std::exception& e) {
    log::error("internal error: {}", e.what());
  } catch (...) {
    log::error("internal error");
  }
  return failure;
}

template <typename Body>
void guarded_void(Body&& body) noexcept {
  guarded(0, [&] {
    body();
    return 0;
  });
}

// The shim's remote object behind a libusb pointer, or nullptr: a device, a handle, or the
// handle a transfer is for.
inline RemoteDevice* remote_of(libusb_device* device) { return RemoteDevice::from(device); }
inline RemoteHandle* remote_of(libusb_device_handle* handle) { return RemoteHandle::from(handle); }
inline RemoteHandle* remote_of(libusb_transfer* transfer) {
  return RemoteHandle::from(transfer->dev_handle);
}

// What an export returns when the remote backend threw (out of memory).
template <typename Result>
Result failure_of() {
  if constexpr (std::is_pointer_v<Result>) {
    return nullptr;
  } else if constexpr (std::is_signed_v<Result>) {
    return LIBUSB_ERROR_NO_MEM;
  } else {
    return Result{};
  }
}

// An export's body once its arguments are checked, as libusb's core calls its backend: for a
// remote device, handle or transfer, the remote backend's `Remote` (with the same arguments
// after the object; a transfer is passed itself); for anything else, the real library's `Real`.
template <auto Real, auto Remote, typename Object, typename... Args>
auto dispatch(Object* object, Args... args) {
  using Result = decltype((real().*Real)(object, args...));
  auto* remote = remote_of(object);
  if (!remote) return (real().*Real)(object, args...);
  auto call = [&] {
    if constexpr (std::is_same_v<Object, libusb_transfer>) {
      return (remote->*Remote)(object, args...);
    } else {
      return (remote->*Remote)(args...);
    }
  };
  if constexpr (std::is_void_v<Result>) {
    guarded_void(call);
  } else {
    return guarded(failure_of<Result>(), call);
  }
}

}  // namespace usbnet::interpose
