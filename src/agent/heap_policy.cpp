#include "agent/heap_policy.h"

#include <malloc.h>

namespace usbnet::agent {

void keep_freed_transfer_memory() {
  // glibc's own ceiling for its adaptive mmap threshold (32 MiB on 64-bit): buffers up to it come
  // from the heap; the heap gives memory back only once 32 MiB lie free at its top.
  constexpr int kKept = 32 << 20;
  mallopt(M_MMAP_THRESHOLD, kKept);
  mallopt(M_TRIM_THRESHOLD, kKept);
}

}  // namespace usbnet::agent
