// What the self-checking test programs share: each check prints one "ok" or "FAIL" line, and
// the program's exit status is the number of failures. Plain C++: the programs know nothing of
// usbnet.
#pragma once

#include <cstdio>
#include <string>

namespace checks {

inline int failures = 0;

inline void check(bool ok, const std::string& what) {
  std::printf("%s %s\n", ok ? "ok  " : "FAIL", what.c_str());
  std::fflush(stdout);  // in order with the shim's stderr, and kept if the program is killed
  if (!ok) ++failures;
}

}  // namespace checks
