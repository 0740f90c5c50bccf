// Text helpers for tests that read programs' output.
#pragma once

#include <string>

namespace usbnet::test {

// How many times `what` occurs in `text`.
inline int count(const std::string& text, const std::string& what) {
  int n = 0;
  for (auto at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

}  // namespace usbnet::test
