// The benchmark's table: rows of usbnet figures beside their raw TCP baseline, measured in
// interleaved rounds and compared by their medians.
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <vector>

namespace usbnet::bench {

double median(std::vector<double> v);
std::string human_rate(double bytes_per_second);  // "123 MB/s"
std::string human_time(double ns);                // "12.3 us"

// One measurement, repeated once per round.
struct Measure {
  std::string name;
  std::function<double()> run;
};

// A block of rows that share one raw TCP baseline. Every round measures each usbnet row and
// each raw candidate once, interleaved, so that all see the same machine; each row's usbnet
// median is compared with the best raw candidate's median (the lowest time, or the highest
// rate). With several candidates, their medians are listed under the block. `note(i)` is
// printed at the end of row i.
void block(const std::vector<Measure>& ours, const std::vector<Measure>& raw, int rounds,
           bool is_time, const std::function<std::string(std::size_t)>& note);

}  // namespace usbnet::bench
