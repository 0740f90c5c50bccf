// HID interrupt latency: the time from QEMU's injecting an input event to the report reaching
// this program. It talks to QEMU's monitor (QMP) itself, so that both ends are timed on one
// clock: from inside the guest, QEMU's user-mode network reaches the host's 127.0.0.1 at
// 10.0.2.2. It opens the mouse's interrupt IN endpoint and COUNT times: submits a transfer
// there, gives it time to reach the device, sends input-send-event (a relative move, +1 and -1
// in x in turn, so that every event changes the report), and waits for the transfer to complete.
// A sample runs from the command's send to the completion. The monitor's own round trip (a
// query-status answered, COUNT times before the samples) is measured too: the part of every
// sample that is QEMU's.
//
// Prints "latency: median M us, p99 P us, N samples; monitor round trip: median Q us".
//
//   hid_latency VID:PID QMP_HOST:PORT COUNT [BUS]
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "lab_util.h"

namespace {

using Clock = std::chrono::steady_clock;

// A QMP connection: one command at a time, each answered by a "return" (or "error") line;
// events the monitor sends meanwhile are skipped.
class Monitor {
 public:
  explicit Monitor(const std::string& address) {
    const auto colon = address.rfind(':');
    if (colon == std::string::npos) lab::fail("QMP address is not HOST:PORT: " + address);
    addrinfo hints{};
    hints.ai_socktype = SOCK_STREAM;
    addrinfo* found = nullptr;
    if (getaddrinfo(address.substr(0, colon).c_str(), address.substr(colon + 1).c_str(), &hints,
                    &found) != 0 ||
        !found) {
      lab::fail("cannot resolve " + address);
    }
    fd_ = ::socket(found->ai_family, SOCK_STREAM, 0);
    const bool connected = fd_ >= 0 && ::connect(fd_, found->ai_addr, found->ai_addrlen) == 0;
    freeaddrinfo(found);
    if (!connected) lab::fail("cannot connect to QEMU's monitor at " + address);
    line();  // the greeting
    command(R"({"execute": "qmp_capabilities"})");
  }
  ~Monitor() {
    if (fd_ >= 0) ::close(fd_);
  }
  Monitor(const Monitor&) = delete;
  Monitor& operator=(const Monitor&) = delete;

  void send(const std::string& json) {
    const std::string text = json + "\n";
    if (::send(fd_, text.data(), text.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(text.size())) {
      lab::fail("QMP: the monitor went away");
    }
  }
  // Waits for the answer to the command sent last.
  void answer() {
    for (;;) {
      const std::string l = line();
      if (l.find("\"return\"") != std::string::npos) return;
      if (l.find("\"error\"") != std::string::npos) lab::fail("QMP: " + l);
    }
  }
  void command(const std::string& json) {
    send(json);
    answer();
  }

 private:
  std::string line() {
    for (;;) {
      const auto newline = buffered_.find('\n');
      if (newline != std::string::npos) {
        std::string l = buffered_.substr(0, newline);
        buffered_.erase(0, newline + 1);
        return l;
      }
      char chunk[4096];
      const ssize_t n = ::recv(fd_, chunk, sizeof chunk, 0);
      if (n <= 0) lab::fail("QMP: the monitor closed the connection");
      buffered_.append(chunk, static_cast<std::size_t>(n));
    }
  }

  int fd_ = -1;
  std::string buffered_;
};

struct Report {
  bool done = false;
};

void LIBUSB_CALL on_report(libusb_transfer* t) { static_cast<Report*>(t->user_data)->done = true; }

double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  const auto i = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

double micros_since(Clock::time_point start) {
  return std::chrono::duration<double, std::micro>(Clock::now() - start).count();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4 || argc > 5) {
    std::fprintf(stderr, "usage: hid_latency VID:PID QMP_HOST:PORT COUNT [BUS]\n");
    return 2;
  }
  std::uint16_t vid, pid;
  lab::parse_vid_pid(argv[1], vid, pid);
  const int count = std::stoi(argv[3]);
  if (count < 1) lab::fail("COUNT must be at least 1");
  const int bus = argc > 4 ? std::stoi(argv[4]) : -1;

  Monitor monitor(argv[2]);
  lab::Context ctx = lab::init();
  constexpr int kMouse = 2;  // boot interface protocol
  lab::Interface usb = lab::open_interface(ctx.get(), vid, pid, LIBUSB_CLASS_HID, kMouse, bus);
  if (!usb.interrupt_in) lab::fail("no interrupt IN endpoint");

  std::vector<unsigned char> buffer(std::max<std::uint16_t>(usb.interrupt_in_size, 8));
  libusb_transfer* t = libusb_alloc_transfer(0);
  Report report;
  libusb_fill_interrupt_transfer(t, usb.handle.get(), usb.interrupt_in, buffer.data(),
                                 static_cast<int>(buffer.size()), &on_report, &report, 5000);
  // The monitor's own round trip, with nothing else going on.
  std::vector<double> samples, monitor_alone;
  for (int i = 0; i < count; ++i) {
    const auto asked = Clock::now();
    monitor.command(R"({"execute": "query-status"})");
    monitor_alone.push_back(micros_since(asked));
  }
  for (int i = 0; i < count; ++i) {
    report.done = false;
    lab::check(libusb_submit_transfer(t), "submit");
    // Long enough for the transfer to reach the device, even over a 10 ms link.
    std::this_thread::sleep_for(std::chrono::milliseconds(30));
    const int dx = i % 2 == 0 ? 1 : -1;
    const auto start = Clock::now();
    monitor.send(R"({"execute": "input-send-event", "arguments": {"events": [{"type": "rel", )"
                 R"("data": {"axis": "x", "value": )" +
                 std::to_string(dx) + "}}]}}");
    while (!report.done) lab::check(libusb_handle_events(ctx.get()), "handle events");
    samples.push_back(micros_since(start));
    monitor.answer();
    if (t->status != LIBUSB_TRANSFER_COMPLETED || t->actual_length < 3) {
      lab::fail("the mouse's report did not come (transfer status " + std::to_string(t->status) +
                ")");
    }
  }
  libusb_free_transfer(t);
  std::printf(
      "latency: median %.0f us, p99 %.0f us, %d samples; monitor round trip: median %.0f us\n",
      percentile(samples, 0.5), percentile(samples, 0.99), count, percentile(monitor_alone, 0.5));
  return 0;
}
