#include "bench/rows.h"

#include <algorithm>
#include <cstdio>

namespace usbnet::bench {

double median(std::vector<double> v) {
  std::nth_element(v.begin(), v.begin() + v.size() / 2, v.end());
  return v[v.size() / 2];
}

std::string human_rate(double bytes_per_second) {
  char text[32];
  std::snprintf(text, sizeof text, "%.0f MB/s", bytes_per_second / 1e6);
  return text;
}

std::string human_time(double ns) {
  char text[32];
  if (ns >= 1e6) {
    std::snprintf(text, sizeof text, "%.2f ms", ns / 1e6);
  } else {
    std::snprintf(text, sizeof text, "%.1f us", ns / 1e3);
  }
  return text;
}

void block(const std::vector<Measure>& ours, const std::vector<Measure>& raw, int rounds,
           bool is_time, const std::function<std::string(std::size_t)>& note) {
  std::vector<std::vector<double>> a(ours.size()), b(raw.size());
  for (int r = 0; r < rounds; ++r) {
    for (std::size_t i = 0; i < std::max(ours.size(), raw.size()); ++i) {
      if (i < ours.size()) a[i].push_back(ours[i].run());
      if (i < raw.size()) b[i].push_back(raw[i].run());
    }
  }
  const auto show = [is_time](double v) { return is_time ? human_time(v) : human_rate(v); };
  std::size_t best = 0;
  for (std::size_t i = 1; i < raw.size(); ++i) {
    const double m = median(b[i]), current = median(b[best]);
    if (is_time ? m < current : m > current) best = i;
  }
  const double y = median(b[best]);
  for (std::size_t i = 0; i < ours.size(); ++i) {
    const double x = median(a[i]);
    const auto [lo, hi] = std::minmax_element(a[i].begin(), a[i].end());
    const std::string range = show(*lo) + ".." + show(*hi);
    std::printf("%-40s %10s %10s %6.2f  %-12s %-22s %s\n", ours[i].name.c_str(), show(x).c_str(),
                show(y).c_str(), x / y, raw[best].name.c_str(), range.c_str(), note(i).c_str());
  }
  if (raw.size() > 1) {
    std::string line = "  raw candidates (medians):";
    for (std::size_t i = 0; i < raw.size(); ++i) {
      line += " " + raw[i].name + " " + show(median(b[i])) + (i + 1 < raw.size() ? "," : "");
    }
    std::printf("%s\n", line.c_str());
  }
  std::fflush(stdout);
}

}  // namespace usbnet::bench
