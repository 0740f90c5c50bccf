// Contexts, options, versions and error names.
#include <cstdarg>
#include <mutex>

#include "interpose/api.h"
#include "interpose/config.h"
#include "interpose/objects.h"

namespace usbnet::interpose {

namespace {

struct DefaultContext {
  std::mutex mutex;
  Context* context = nullptr;
  int references = 0;
};

DefaultContext& default_context() {
  static Immortal<DefaultContext> d;
  return d.get();
}

// A context wrapping a fresh real one (its own, never the real library's default). When the
// real library cannot start, remote devices alone are still offered if the user asked for
// them.
int create_context(Context** out) {
  config();  // reads the environment (and reports bad values) once
  libusb_context* real_ctx = nullptr;
  int r = real().available ? real().libusb_init(&real_ctx) : LIBUSB_ERROR_NOT_FOUND;
  if (r != LIBUSB_SUCCESS) {
    if (!config().remote_enabled()) return r;
    log::warn("libusb_init failed ({}); only remote devices are available",
              real().available ? real().libusb_error_name(r) : "no libusb");
    real_ctx = nullptr;
  }
  *out = new Context(real_ctx);  // the C ABI's object: freed by libusb_exit
  return LIBUSB_SUCCESS;
}

}  // namespace

void destroy_context(Context* context) {
  libusb_context* real_ctx = context->real_context();
  delete context;
  if (real_ctx) real().libusb_exit(real_ctx);
}

Context* our_context(libusb_context* ctx) {
  if (ctx) return Context::from(ctx);
  DefaultContext& d = default_context();
  std::lock_guard lock(d.mutex);
  if (!d.context) log::warn("a libusb call used the default context before libusb_init(NULL)");
  return d.context;
}

libusb_context* real_context_of(libusb_context* ctx) {
  if (!ctx) {
    DefaultContext& d = default_context();
    std::lock_guard lock(d.mutex);
    return d.context ? d.context->real_context() : nullptr;
  }
  if (Context* ours = Context::from(ctx)) return ours->real_context();
  return ctx;
}

int init_default_context() {
  DefaultContext& d = default_context();
  std::lock_guard lock(d.mutex);
  if (d.context) {
    ++d.references;
    return LIBUSB_SUCCESS;
  }
  const int r = create_context(&d.context);
  if (r == LIBUSB_SUCCESS) d.references = 1;
  return r;
}

void exit_default_context() {
  Context* gone = nullptr;
  {
    DefaultContext& d = default_context();
    std::lock_guard lock(d.mutex);
    if (!d.context || --d.references > 0) return;
    gone = std::exchange(d.context, nullptr);
  }
  destroy_context(gone);
}

}  // namespace usbnet::interpose

using namespace usbnet::interpose;

USBNET_EXPORT int libusb_init(libusb_context** ctx) {
  return guarded(int{LIBUSB_ERROR_NO_MEM}, [&] {
    if (!ctx) return init_default_context();
    Context* context = nullptr;
    const int r = create_context(&context);
    if (r == LIBUSB_SUCCESS) *ctx = context->as_libusb();
    return r;
  });
}

USBNET_EXPORT void libusb_exit(libusb_context* ctx) {
  guarded_void([&] {
    if (!ctx) return exit_default_context();
    if (Context* context = Context::from(ctx)) return destroy_context(context);
    real().libusb_exit(ctx);
  });
}

USBNET_EXPORT void libusb_set_debug(libusb_context* ctx, int level) {
  if (libusb_context* r = real_context_of(ctx); r || !ctx) real().libusb_set_debug(r, level);
}

USBNET_EXPORT void libusb_set_log_cb(libusb_context* ctx, libusb_log_cb cb, int mode) {
  real().libusb_set_log_cb(real_context_of(ctx), cb, mode);
}

USBNET_EXPORT int libusb_set_option(libusb_context* ctx, enum libusb_option option, ...) {
  // Of libusb 1.0.26's options only LOG_LEVEL takes an argument (an int).
  libusb_context* target = real_context_of(ctx);
  if (option == LIBUSB_OPTION_LOG_LEVEL) {
    va_list args;
    va_start(args, option);
    const int level = va_arg(args, int);
    va_end(args);
    if (ctx && !target) return LIBUSB_SUCCESS;  // remote-only context: nothing to log
    return real().libusb_set_option(target, option, level);
  }
  if (ctx && !target) return LIBUSB_SUCCESS;
  return real().libusb_set_option(target, option);
}

USBNET_EXPORT const struct libusb_version* libusb_get_version(void) {
  return real().libusb_get_version();
}

USBNET_EXPORT int libusb_has_capability(uint32_t capability) {
  // Remote devices come and go with hotplug events wherever the real library runs.
  if (capability == LIBUSB_CAP_HAS_HOTPLUG && config().remote_enabled()) return 1;
  return real().libusb_has_capability(capability);
}

USBNET_EXPORT const char* libusb_error_name(int code) { return real().libusb_error_name(code); }

USBNET_EXPORT const char* libusb_strerror(int code) { return real().libusb_strerror(code); }

USBNET_EXPORT int libusb_setlocale(const char* locale) { return real().libusb_setlocale(locale); }
