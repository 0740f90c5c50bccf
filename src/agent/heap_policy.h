// How the agent's allocator keeps the memory of finished transfers.
#pragma once

namespace usbnet::agent {

// Keeps freed transfer buffers in the heap for the next transfers instead of giving them back
// to the kernel. With glibc's defaults, a few 64 KiB buffers freed at the top of the heap pass
// its trim threshold (128 KiB) and are returned at once, and the next transfer's buffer comes
// back as fresh pages, each faulted in and zeroed by the kernel: on the loopback benchmark's
// async IN row that was one page fault per transfer and a fifth of the throughput. Buffers
// above 128 KiB (1 MiB READ(10)s) went to mmap and paid it for every page. The agent's own
// bounds (limits.h) cap what is in flight, so what the heap keeps is bounded too.
void keep_freed_transfer_memory();

}  // namespace usbnet::agent
