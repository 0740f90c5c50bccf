// Round-trip measurements start with a few round trips that do not count (caches, the
// connection's first segments); on a delayed link each costs the full delay, so a short
// measurement warms up less.
#pragma once

#include <algorithm>

namespace usbnet::bench {

inline int warm_up_rounds(int iterations) { return std::min(100, iterations / 2); }

}  // namespace usbnet::bench
