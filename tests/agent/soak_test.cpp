// The soak: 32 clients share 6 simulated loopback devices and an isochronous audio device for
// a while (USBNET_SOAK_SECONDS, 30 by default; `./run soak` runs it longer). Each client takes
// turns: it claims a free device and runs control, bulk, interrupt and (on the audio device)
// isochronous transfers, every byte checked, then releases it; on a device another client holds
// it reads descriptors, which stay open to everyone. It prints the bytes moved, the errors and
// the agent's memory before, at its peak and after.
#include <atomic>
#include <catch2/catch.hpp>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <thread>

#include "support/agent_process.h"
#include "support/wire_client.h"
#include "urb_helpers.h"

using namespace usbnet;
using namespace usbnet::test;
using wire::UrbStatus;
using wire::UrbType;

namespace {

constexpr int kClients = 32;
constexpr std::uint8_t kVendorOut = 0x40, kVendorIn = 0xc0;
constexpr std::uint8_t kWriteBuffer = 0x01, kReadBuffer = 0x02, kResetStreams = 0x06;

struct Totals {
  std::atomic<std::uint64_t> bytes{0};
  std::atomic<std::uint64_t> errors{0};
  std::atomic<std::uint64_t> claims{0};
  std::atomic<std::uint64_t> busy{0};
};

struct Device {
  std::uint32_t id;
  bool audio;
  wire::Bytes descriptor;
};

class SoakClient {
 public:
  SoakClient(std::uint16_t port, const std::vector<Device>& devices, Totals& totals, int seed)
      : c_(port), devices_(devices), totals_(totals), random_(seed) {}

  void run(std::chrono::steady_clock::time_point end) {
    c_.handshake();
    std::vector<std::uint32_t> handles;
    for (const Device& d : devices_) handles.push_back(c_.request(wire::Open{0, d.id}).value());
    std::size_t next = random_() % devices_.size();
    while (std::chrono::steady_clock::now() < end) {
      const std::size_t i = next++ % devices_.size();
      const std::uint32_t h = handles[i];
      if (!c_.request(wire::ClaimInterface{0, h, 0})) {
        ++totals_.busy;
        read_descriptor(h, devices_[i]);
        continue;
      }
      ++totals_.claims;
      if (devices_[i].audio) {
        iso_burst(h);
      } else {
        loopback_burst(h);
      }
      if (!c_.request(wire::ReleaseInterface{0, h, 0})) fail("release");
    }
  }

 private:
  void fail(const char* what) {
    if (++totals_.errors <= 10) std::fprintf(stderr, "soak: %s failed\n", what);
  }
  bool check(bool ok, const char* what, std::size_t bytes) {
    if (!ok) {
      fail(what);
      return false;
    }
    totals_.bytes += bytes;
    return true;
  }
  wire::Bytes random_bytes(std::size_t n) {
    wire::Bytes b(n);
    for (auto& x : b) x = static_cast<std::uint8_t>(random_());
    return b;
  }

  void read_descriptor(std::uint32_t h, const Device& d) {
    auto r = run_urb(c_, control(h, 0x80, 0x06, 0x0100, 0, 18));
    check(r && r->status == UrbStatus::Completed && r->data == d.descriptor, "GET_DESCRIPTOR", 18);
  }

  // Round trips on the loopback device: control buffer, bulk and interrupt loopback, the source.
  void loopback_burst(std::uint32_t h) {
    auto reset = run_urb(c_, control(h, kVendorOut, kResetStreams, 0, 0, 0));
    if (!check(reset && reset->status == UrbStatus::Completed, "RESET_STREAMS", 0)) return;
    for (int round = 0; round < 8; ++round) {
      const wire::Bytes buffer = random_bytes(1 + random_() % 4096);
      auto wrote = run_urb(
          c_, control(h, kVendorOut, kWriteBuffer, 0, 0, static_cast<std::uint16_t>(buffer.size())),
          buffer);
      auto read = run_urb(
          c_, control(h, kVendorIn, kReadBuffer, 0, 0, static_cast<std::uint16_t>(buffer.size())));
      check(wrote && read && read->data == buffer, "control buffer", 2 * buffer.size());

      const wire::Bytes bulk = random_bytes(1 + random_() % 65536);
      auto out = run_urb(
          c_, transfer(UrbType::Bulk, h, 0x01, static_cast<std::uint32_t>(bulk.size())), bulk);
      auto in = run_urb(c_, transfer(UrbType::Bulk, h, 0x81,
                                     static_cast<std::uint32_t>((bulk.size() + 511) / 512 * 512)));
      check(out && in && in->status == UrbStatus::Completed && in->data == bulk, "bulk loopback",
            2 * bulk.size());

      const wire::Bytes irq = random_bytes(1 + random_() % 64);
      auto iout = run_urb(
          c_, transfer(UrbType::Interrupt, h, 0x03, static_cast<std::uint32_t>(irq.size())), irq);
      auto iin = run_urb(c_, transfer(UrbType::Interrupt, h, 0x83, 64));
      check(iout && iin && iin->data == irq, "interrupt loopback", 2 * irq.size());

      const std::uint32_t n = 512 * (1 + random_() % 128);
      auto source = run_urb(c_, transfer(UrbType::Bulk, h, 0x82, n));
      check(source && source->status == UrbStatus::Completed && source->data == pattern(n, source_),
            "source pattern", n);
      source_ += n;
    }
    source_ = 0;
  }

  // Isochronous IN on the audio device: each packet's bytes count up from its first, and its
  // first byte follows the previous packet's (a lost packet skips one).
  void iso_burst(std::uint32_t h) {
    if (!c_.request(wire::SetAltSetting{0, h, 0, 1})) return fail("SET_ALT_SETTING 1");
    for (int round = 0; round < 4; ++round) {
      wire::UrbSubmit iso = transfer(UrbType::Iso, h, 0x81, 8 * 192);
      iso.iso_lengths.assign(8, 192);
      auto r = run_urb(c_, iso);
      if (!r || r->status != UrbStatus::Completed || r->iso.size() != 8) {
        fail("iso IN");
        continue;
      }
      std::size_t at = 0;
      bool ok = true;
      for (const auto& packet : r->iso) {
        if (packet.status != UrbStatus::Completed) continue;  // lost on the bus: allowed
        for (std::uint32_t i = 0; i < packet.actual_length; ++i) {
          ok = ok && r->data[at + i] == static_cast<std::uint8_t>(r->data[at] + i);
        }
        ok = ok && packet.actual_length >= 176 && packet.actual_length <= 192;
        at += packet.actual_length;
      }
      check(ok && at == r->data.size(), "iso data", at);
    }
    if (!c_.request(wire::SetAltSetting{0, h, 0, 0})) fail("SET_ALT_SETTING 0");
  }

  WireClient c_;
  const std::vector<Device>& devices_;
  Totals& totals_;
  std::mt19937 random_;
  std::uint64_t source_ = 0;
};

}  // namespace

TEST_CASE("soak: 32 clients share 7 devices, every byte checked, the agent's memory bounded") {
  const char* env = std::getenv("USBNET_SOAK_SECONDS");
  const int seconds = env ? std::max(1, std::atoi(env)) : 30;
  AgentProcess agent({"--simulate", "loopback,loopback,loopback,loopback,loopback,loopback,audio"});
  const pid_t pid = agent.process().pid();
  std::vector<Device> devices;
  {
    WireClient lister(agent.port());
    lister.handshake();
    for (const auto& d : without_hubs(lister.list())) {
      const std::uint16_t product = d.device_descriptor[10] | d.device_descriptor[11] << 8;
      devices.push_back(
          Device{d.device_id, product == 0x0003,
                 wire::Bytes(d.device_descriptor.begin(), d.device_descriptor.end())});
    }
  }
  REQUIRE(devices.size() == 7);
  const std::size_t rss_before = rss_kib(pid);
  Totals totals;
  std::atomic<std::size_t> rss_peak{rss_before};
  std::atomic<bool> running{true};
  std::thread monitor([&] {
    while (running) {
      rss_peak = std::max<std::size_t>(rss_peak, rss_kib(pid));
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  });
  const auto start = std::chrono::steady_clock::now();
  const auto end = start + std::chrono::seconds(seconds);
  std::vector<std::thread> clients;
  for (int i = 0; i < kClients; ++i) {
    clients.emplace_back([&, i] {
      try {
        SoakClient(agent.port(), devices, totals, 1000 + i).run(end);
      } catch (const std::exception& e) {
        ++totals.errors;
        std::fprintf(stderr, "soak: client %d: %s\n", i, e.what());
      }
    });
  }
  for (auto& t : clients) t.join();
  const double elapsed =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::this_thread::sleep_for(std::chrono::milliseconds(500));  // the sessions wind down
  running = false;
  monitor.join();
  const std::size_t rss_after = rss_kib(pid);
  std::printf(
      "soak: %d clients on %zu devices for %.1f s: %.1f MB moved and checked, %llu "
      "errors, %llu claims (%llu busy), agent RSS before %.1f MiB, peak %.1f MiB, after "
      "%.1f MiB\n",
      kClients, devices.size(), elapsed, totals.bytes / 1e6,
      static_cast<unsigned long long>(totals.errors.load()),
      static_cast<unsigned long long>(totals.claims.load()),
      static_cast<unsigned long long>(totals.busy.load()), rss_before / 1024.0, rss_peak / 1024.0,
      rss_after / 1024.0);
  std::fflush(stdout);
  CHECK(totals.errors == 0);
  CHECK(totals.claims > static_cast<std::uint64_t>(kClients));
  CHECK(totals.bytes > 0);
  CHECK(rss_peak < rss_before + 128 * 1024);
  CHECK(agent.process().err().find("error:") == std::string::npos);
}
