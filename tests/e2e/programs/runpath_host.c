/* A program that never uses libusb and dlopens a plug-in found only through its own RUNPATH
 * ($ORIGIN/runpath); the plug-in dlopens a library found only through the plug-in's RUNPATH
 * ($ORIGIN/leaf). glibc searches the RUNPATH of the object that called dlopen(), so this works
 * under the shim only if the shim's dlopen passes each request on as the caller's own. It also
 * says whether libusb got into the process (it must not: this program has nothing to do with
 * USB), and its output must be the same with and without the shim. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <link.h>
#include <stdio.h>
#include <string.h>

static int libusb_loaded(struct dl_phdr_info* info, size_t size, void* data) {
  (void)size;
  (void)data;
  return info->dlpi_name && strstr(info->dlpi_name, "libusb-1.0") != NULL;
}

int main(void) {
  void* plugin = dlopen("librunpath_plugin.so", RTLD_NOW | RTLD_LOCAL);
  if (!plugin) {
    printf("dlopen of the plug-in failed: %s\n", dlerror());
    return 1;
  }
  int (*answer)(void) = (int (*)(void))dlsym(plugin, "plugin_answer");
  const int value = answer ? answer() : -1;
  printf("the plug-in answers %d\n", value);
  printf("libusb is %s\n", dl_iterate_phdr(libusb_loaded, NULL) ? "loaded" : "not loaded");
  dlclose(plugin);
  return value == 42 ? 0 : 1;
}
