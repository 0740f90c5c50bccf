// Shared by the exported functions: telling the shim's objects from the real library's, the
// default context, and a guard that keeps C++ exceptions from crossing the C ABI.
#pragma once

#include <libusb.h>

#include <exception>

#include "common/log.h"
#include "interpose/context.h"
#include "interpose/real_libusb.h"

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

}  // namespace usbnet::interpose
