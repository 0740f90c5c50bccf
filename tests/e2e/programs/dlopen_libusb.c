/* A plain C program that loads libusb-1.0 at run time, as pyusb, cffi bindings and plug-in
 * hosts do: it never links libusb. `dlopen_libusb WAY [PATH]` loads it one way, looks its
 * functions up, and uses the loopback device 1209:0001 (a control round trip of the vendor
 * buffer, every byte compared). It prints what it found; exit status 0 only if every check
 * passed. WAY:
 *   soname      dlopen("libusb-1.0.so.0", RTLD_NOW | RTLD_LOCAL), dlsym on the handle
 *   path PATH   dlopen(PATH, RTLD_LAZY | RTLD_LOCAL): the library's file, a symlink to it, ...
 *   global      dlopen("libusb-1.0.so.0", RTLD_NOW | RTLD_GLOBAL), then dlsym(RTLD_DEFAULT)
 *   twice PATH  by soname and by PATH: one library; dlclose of one leaves the other usable,
 *               and a third dlopen after both are closed works again
 *   threads     four threads load it at once and each lists the devices
 *   default     no dlopen: dlsym(RTLD_DEFAULT)
 *   next        no dlopen: dlsym(RTLD_NEXT)
 *   dlmopen     dlmopen(LM_ID_BASE, "libusb-1.0.so.0", RTLD_NOW)
 *   linked LIB  dlopen(LIB, RTLD_NOW | RTLD_LOCAL): a library that links libusb itself (as
 *               libftdi and libmtp do) and lists the devices through it
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <libusb.h>
#include <link.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct libusb_api {
  __typeof__(&libusb_init) init;
  __typeof__(&libusb_exit) exit;
  __typeof__(&libusb_get_device_list) get_device_list;
  __typeof__(&libusb_free_device_list) free_device_list;
  __typeof__(&libusb_get_device_descriptor) get_device_descriptor;
  __typeof__(&libusb_get_bus_number) get_bus_number;
  __typeof__(&libusb_open_device_with_vid_pid) open_device_with_vid_pid;
  __typeof__(&libusb_control_transfer) control_transfer;
  __typeof__(&libusb_close) close;
};

static int failures = 0;

static void check(int ok, const char* what) {
  if (!ok) {
    fprintf(stderr, "FAIL: %s\n", what);
    ++failures;
  }
}

static void* find(void* handle, const char* name) {
  void* f = dlsym(handle, name);
  if (!f) fprintf(stderr, "FAIL: dlsym(%s): %s\n", name, dlerror());
  return f;
}

static int resolve(void* handle, struct libusb_api* api) {
  api->init = (__typeof__(api->init))find(handle, "libusb_init");
  api->exit = (__typeof__(api->exit))find(handle, "libusb_exit");
  api->get_device_list = (__typeof__(api->get_device_list))find(handle, "libusb_get_device_list");
  api->free_device_list =
      (__typeof__(api->free_device_list))find(handle, "libusb_free_device_list");
  api->get_device_descriptor =
      (__typeof__(api->get_device_descriptor))find(handle, "libusb_get_device_descriptor");
  api->get_bus_number = (__typeof__(api->get_bus_number))find(handle, "libusb_get_bus_number");
  api->open_device_with_vid_pid =
      (__typeof__(api->open_device_with_vid_pid))find(handle, "libusb_open_device_with_vid_pid");
  api->control_transfer =
      (__typeof__(api->control_transfer))find(handle, "libusb_control_transfer");
  api->close = (__typeof__(api->close))find(handle, "libusb_close");
  return api->init && api->exit && api->get_device_list && api->free_device_list &&
         api->get_device_descriptor && api->get_bus_number && api->open_device_with_vid_pid &&
         api->control_transfer && api->close;
}

/* Which file a function lives in. */
static const char* file_of(void* function) {
  Dl_info info;
  if (!function || !dladdr(function, &info) || !info.dli_fname) return "?";
  const char* slash = strrchr(info.dli_fname, '/');
  return slash ? slash + 1 : info.dli_fname;
}

/* How many devices of VID 1209 on remote buses (201 and up) the library lists. */
static int count_remote(const struct libusb_api* api, libusb_context* ctx) {
  libusb_device** list = NULL;
  ssize_t n = api->get_device_list(ctx, &list);
  if (n < 0) return -1;
  int remote = 0;
  for (ssize_t i = 0; i < n; ++i) {
    struct libusb_device_descriptor d;
    if (api->get_device_descriptor(list[i], &d) == 0 && d.idVendor == 0x1209 &&
        api->get_bus_number(list[i]) >= 201)
      ++remote;
  }
  api->free_device_list(list, 1);
  return remote;
}

/* A round trip of the loopback device's vendor buffer. */
static int control_round_trip(const struct libusb_api* api, libusb_context* ctx) {
  libusb_device_handle* h = api->open_device_with_vid_pid(ctx, 0x1209, 0x0001);
  if (!h) return 0;
  unsigned char out[64], in[64];
  for (unsigned i = 0; i < sizeof out; ++i) out[i] = (unsigned char)(i * 7 + 3);
  int w = api->control_transfer(h, 0x40, 0x01, 0, 0, out, sizeof out, 2000);
  memset(in, 0, sizeof in);
  int r = api->control_transfer(h, 0xc0, 0x02, 0, 0, in, sizeof in, 2000);
  api->close(h);
  return w == (int)sizeof out && r == (int)sizeof in && memcmp(in, out, sizeof in) == 0;
}

/* Lists and uses the devices through `api`; prints one line. */
static void exercise(const char* way, const struct libusb_api* api) {
  libusb_context* ctx = NULL;
  int r = api->init(&ctx);
  check(r == 0, "libusb_init");
  if (r != 0) return;
  const int remote = count_remote(api, ctx);
  const int round_trip = control_round_trip(api, ctx);
  api->exit(ctx);
  printf("%s: functions from %s, %d remote devices, control round trip %s\n", way,
         file_of((void*)api->init), remote, round_trip ? "OK" : "FAILED");
  check(remote == 2, "two remote devices (the loopback and the mouse)");
  check(round_trip, "control round trip with 1209:0001");
}

static int real_libusb_loaded_cb(struct dl_phdr_info* info, size_t size, void* data) {
  (void)size;
  (void)data;
  return info->dlpi_name && strstr(info->dlpi_name, "libusb-1.0.so") != NULL;
}

static void* load(const char* file, int mode) {
  void* h = dlopen(file, mode);
  if (!h) fprintf(stderr, "FAIL: dlopen(%s): %s\n", file, dlerror());
  check(h != NULL, "dlopen");
  return h;
}

static void by_handle(const char* way, const char* file, int mode) {
  void* h = load(file, mode);
  struct libusb_api api;
  if (!h || !resolve(h, &api)) {
    ++failures;
    return;
  }
  exercise(way, &api);
  check(dlclose(h) == 0, "dlclose");
}

static void* thread_main(void* arg) {
  (void)arg;
  void* h = dlopen("libusb-1.0.so.0", RTLD_NOW | RTLD_LOCAL);
  struct libusb_api api;
  long remote = -1;
  if (h && resolve(h, &api)) {
    libusb_context* ctx = NULL;
    if (api.init(&ctx) == 0) {
      remote = count_remote(&api, ctx);
      api.exit(ctx);
    }
  }
  if (h) dlclose(h);
  return (void*)remote;
}

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: dlopen_libusb WAY [PATH]\n");
    return 2;
  }
  const char* way = argv[1];
  const char* arg = argc > 2 ? argv[2] : NULL;
  struct libusb_api api;
  if (strcmp(way, "soname") == 0) {
    by_handle(way, "libusb-1.0.so.0", RTLD_NOW | RTLD_LOCAL);
  } else if (strcmp(way, "path") == 0 && arg) {
    by_handle(way, arg, RTLD_LAZY | RTLD_LOCAL);
  } else if (strcmp(way, "global") == 0) {
    void* h = load("libusb-1.0.so.0", RTLD_NOW | RTLD_GLOBAL);
    if (h && resolve(RTLD_DEFAULT, &api)) exercise(way, &api);
  } else if (strcmp(way, "twice") == 0 && arg) {
    void* a = load("libusb-1.0.so.0", RTLD_NOW | RTLD_LOCAL);
    void* b = load(arg, RTLD_NOW | RTLD_LOCAL);
    check(a == b, "both dlopens give the same library");
    check(a && dlclose(a) == 0, "dlclose of the first");
    if (b && resolve(b, &api)) exercise("twice, after one dlclose", &api);
    check(b && dlclose(b) == 0, "dlclose of the second");
    by_handle("twice, loaded again", "libusb-1.0.so.0", RTLD_NOW | RTLD_LOCAL);
  } else if (strcmp(way, "threads") == 0) {
    pthread_t threads[4];
    for (int i = 0; i < 4; ++i)
      check(pthread_create(&threads[i], NULL, thread_main, NULL) == 0, "pthread_create");
    int all = 1;
    for (int i = 0; i < 4; ++i) {
      void* remote = NULL;
      pthread_join(threads[i], &remote);
      printf("thread %d: %ld remote devices\n", i, (long)remote);
      all = all && (long)remote == 2;
    }
    check(all, "every thread sees the two remote devices");
  } else if (strcmp(way, "default") == 0 || strcmp(way, "next") == 0) {
    if (resolve(strcmp(way, "default") == 0 ? RTLD_DEFAULT : RTLD_NEXT, &api))
      exercise(way, &api);
    else
      ++failures;
  } else if (strcmp(way, "dlmopen") == 0) {
    void* h = dlmopen(LM_ID_BASE, "libusb-1.0.so.0", RTLD_NOW);
    check(h != NULL, "dlmopen");
    if (h && resolve(h, &api)) exercise(way, &api);
  } else if (strcmp(way, "linked") == 0 && arg) {
    void* h = load(arg, RTLD_NOW | RTLD_LOCAL);
    int (*count)(void) = h ? (int (*)(void))dlsym(h, "count_remote_loopback_devices") : NULL;
    check(count != NULL, "the library's function");
    const int remote = count ? count() : -1;
    printf("%s: %d remote devices through a library that links libusb\n", way, remote);
    check(remote == 2, "it sees the two remote devices");
  } else {
    fprintf(stderr, "dlopen_libusb: unknown way '%s'\n", way);
    return 2;
  }
  /* Local devices are the real library's: it must be in the process. */
  const int real_loaded = dl_iterate_phdr(real_libusb_loaded_cb, NULL);
  printf("the real libusb-1.0 is %sloaded\n", real_loaded ? "" : "not ");
  if (failures) printf("%d checks failed\n", failures);
  return failures ? 1 : 0;
}
