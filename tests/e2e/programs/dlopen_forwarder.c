// A preloaded library of someone else's that interposes dlopen() itself and passes every request
// on (as ThreadSanitizer's runtime, VirtualGL's faker or a tracer do), loaded before the shim.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stddef.h>

__attribute__((visibility("default"))) void* dlopen(const char* file, int mode) {
  static void* (*next)(const char*, int);
  if (!next) next = (void* (*)(const char*, int))dlsym(RTLD_NEXT, "dlopen");
  return next ? next(file, mode) : NULL;
}
