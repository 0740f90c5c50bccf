/* runpath_host's plug-in: dlopens its leaf library through its own RUNPATH ($ORIGIN/leaf). */
#include <dlfcn.h>
#include <stdio.h>

__attribute__((visibility("default"))) int plugin_answer(void) {
  void* leaf = dlopen("librunpath_leaf.so", RTLD_NOW | RTLD_LOCAL);
  if (!leaf) {
    printf("the plug-in cannot dlopen its leaf: %s\n", dlerror());
    return -1;
  }
  int (*value)(void) = (int (*)(void))dlsym(leaf, "leaf_value");
  const int answer = value ? value() + 1 : -1;
  dlclose(leaf);
  return answer;
}
