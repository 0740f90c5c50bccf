#include "interpose/objects.h"

namespace usbnet::interpose {

PointerSet<Context>& contexts() {
  static Immortal<PointerSet<Context>> set;
  return set.get();
}
PointerSet<RemoteDevice>& remote_devices() {
  static Immortal<PointerSet<RemoteDevice>> set;
  return set.get();
}
PointerSet<RemoteHandle>& remote_handles() {
  static Immortal<PointerSet<RemoteHandle>> set;
  return set.get();
}
PointerSet<void>& allocations() {
  static Immortal<PointerSet<void>> set;
  return set.get();
}
}  // namespace usbnet::interpose
