// One device, several clients: the agent enforces what the interface claims mean. A second
// client that has opened the device but holds nothing can read descriptors and status, and is
// refused everything that would touch the first client's interface or the device as a whole
// (the attacks of a hostile client, tried with a raw wire client and against an unmodified
// libusb program).
#include <catch2/catch.hpp>
#include <thread>

#include "support/agent_process.h"
#include "support/shim_env.h"
#include "support/wire_client.h"
#include "urb_helpers.h"

using namespace usbnet;
using namespace usbnet::test;
using namespace usbnet::wire::error_code;
using wire::UrbStatus;
using wire::UrbType;

namespace {

constexpr std::uint8_t kVendorOut = 0x40, kVendorIn = 0xc0;
constexpr std::uint8_t kWriteBuffer = 0x01, kReadBuffer = 0x02, kDetach = 0x07;

// A request's answer: 0 for a REPLY, else the ERROR's code (its text: last_error_text()).
std::int32_t ask(WireClient& c, wire::Message request) {
  auto r = c.request(std::move(request));
  return r ? 0 : r.error();
}

struct TwoClients {
  AgentProcess agent{{"--no-usb", "--simulate", "loopback"}};
  WireClient a{agent.port()};
  WireClient b{agent.port()};
  std::uint32_t device = 0, ha = 0, hb = 0;
  TwoClients() {
    a.handshake();
    b.handshake();
    device = device_with_product(a, loopback_device::kProductId);
    REQUIRE(device != 0);
    ha = a.request(wire::Open{0, device}).value();
    hb = b.request(wire::Open{0, device}).value();
    REQUIRE(a.request(wire::ClaimInterface{0, ha, 0}));
  }
};

const wire::Bytes kSecret = {'s', 'e', 'c', 'r', 'e', 't', '-', 'o', 'f', '-', 'A', '!', '!', '!'};

}  // namespace

TEST_CASE("another client cannot read from an endpoint of a claimed interface") {
  TwoClients t;
  auto sent = run_urb(t.a, transfer(UrbType::Bulk, t.ha, 0x01, 14), kSecret);
  REQUIRE(sent);
  REQUIRE(sent->status == UrbStatus::Completed);
  auto stolen = run_urb(t.b, transfer(UrbType::Bulk, t.hb, 0x81, 512));
  REQUIRE(stolen);
  CHECK(stolen->status == UrbStatus::Error);
  CHECK(stolen->data.empty());
  // Nor write to one.
  auto injected = run_urb(t.b, transfer(UrbType::Bulk, t.hb, 0x01, 4), pattern(4));
  REQUIRE(injected);
  CHECK(injected->status == UrbStatus::Error);
  // A's data is still there for A, alone.
  auto mine = run_urb(t.a, transfer(UrbType::Bulk, t.ha, 0x81, 512));
  REQUIRE(mine);
  CHECK(mine->status == UrbStatus::Completed);
  CHECK(mine->data == kSecret);
  CHECK(t.agent.process().wait_for_output("is claimed by another client", std::chrono::seconds(5)));
}

TEST_CASE("requests on a claimed interface are refused to another client, with a reason") {
  TwoClients t;
  CHECK(ask(t.b, wire::ClaimInterface{0, t.hb, 0}) == kBusy);
  CHECK(t.b.last_error_text() ==
        "interface 0 of device " + std::to_string(t.device) + " is claimed by another client");
  CHECK(t.b.last_error_text().find("127.0.0.1") == std::string::npos);
  CHECK(ask(t.b, wire::SetAltSetting{0, t.hb, 0, 0}) == kBusy);
  CHECK(ask(t.b, wire::ClearHalt{0, t.hb, 0x81}) == kBusy);
  CHECK(ask(t.b, wire::ClearHalt{0, t.hb, 0x01}) == kBusy);
  CHECK(ask(t.b, wire::ResetDevice{0, t.hb}) == kBusy);
  CHECK(t.b.last_error_text().find("acts on the whole device") != std::string::npos);
  CHECK(ask(t.b, wire::SetConfiguration{0, t.hb, 1}) == kBusy);
  CHECK(ask(t.b, wire::KernelDriver{0, t.hb, wire::KernelDriverOp::Detach, 0}) == kBusy);
  CHECK(ask(t.b, wire::KernelDriver{0, t.hb, wire::KernelDriverOp::Query, 0}) == kBusy);
  // Without a claim of its own, B's alternate setting is NOT_FOUND, as libusb answers.
  REQUIRE(t.a.request(wire::ReleaseInterface{0, t.ha, 0}));
  CHECK(ask(t.b, wire::SetAltSetting{0, t.hb, 0, 0}) == kNotFound);
  // The owner may do all of it.
  REQUIRE(t.a.request(wire::ClaimInterface{0, t.ha, 0}));
  CHECK(t.a.request(wire::SetAltSetting{0, t.ha, 0, 0}));
  CHECK(t.a.request(wire::ClearHalt{0, t.ha, 0x81}));
  CHECK(t.a.request(wire::ResetDevice{0, t.ha}));
  CHECK(t.a.request(wire::KernelDriver{0, t.ha, wire::KernelDriverOp::Query, 0}));
}

TEST_CASE("another client cannot halt the owner's endpoint or take the device away") {
  TwoClients t;
  // SET_FEATURE(ENDPOINT_HALT) on 0x81, and the vendor request that detaches the device.
  auto halt = run_urb(t.b, control(t.hb, 0x02, 0x03, 0, 0x81, 0));
  REQUIRE(halt);
  CHECK(halt->status == UrbStatus::Error);
  auto clear = run_urb(t.b, control(t.hb, 0x02, 0x01, 0, 0x81, 0));
  REQUIRE(clear);
  CHECK(clear->status == UrbStatus::Error);
  auto detach = run_urb(t.b, control(t.hb, kVendorOut, kDetach, 100, 0, 0));
  REQUIRE(detach);
  CHECK(detach->status == UrbStatus::Error);
  auto vendor_in = run_urb(t.b, control(t.hb, kVendorIn, kReadBuffer, 0, 0, 16));
  REQUIRE(vendor_in);
  CHECK(vendor_in->status == UrbStatus::Error);
  // A is untouched: its endpoint is not halted and the device is still there.
  REQUIRE(run_urb(t.a, transfer(UrbType::Bulk, t.ha, 0x01, 14), kSecret));
  auto echo = run_urb(t.a, transfer(UrbType::Bulk, t.ha, 0x81, 512));
  REQUIRE(echo);
  CHECK(echo->status == UrbStatus::Completed);
  CHECK(echo->data == kSecret);
  auto own_vendor = run_urb(t.a, control(t.ha, kVendorOut, kWriteBuffer, 0, 0, 4), pattern(4));
  REQUIRE(own_vendor);
  CHECK(own_vendor->status == UrbStatus::Completed);
}

TEST_CASE("every client that opened the device reads its descriptors and status") {
  TwoClients t;
  auto descriptor = run_urb(t.b, control(t.hb, 0x80, 0x06, 0x0100, 0, 18));
  REQUIRE(descriptor);
  CHECK(descriptor->status == UrbStatus::Completed);
  CHECK(descriptor->data.size() == 18);
  auto config = run_urb(t.b, control(t.hb, 0x80, 0x06, 0x0200, 0, 9));
  REQUIRE(config);
  CHECK(config->status == UrbStatus::Completed);
  auto status = run_urb(t.b, control(t.hb, 0x82, 0x00, 0, 0x81, 2));
  REQUIRE(status);
  CHECK(status->status == UrbStatus::Completed);
  auto configuration = run_urb(t.b, control(t.hb, 0x80, 0x08, 0, 0, 1));
  REQUIRE(configuration);
  CHECK(configuration->status == UrbStatus::Completed);
  CHECK(t.b.request(wire::GetConfiguration{0, t.hb}));
}

TEST_CASE("whole-device requests are open again once no other client holds an interface") {
  TwoClients t;
  CHECK(ask(t.b, wire::ResetDevice{0, t.hb}) == kBusy);
  t.a.close();  // the agent releases what A held
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  std::int32_t claim;
  while ((claim = ask(t.b, wire::ClaimInterface{0, t.hb, 0})) != 0 &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  CHECK(claim == 0);
  CHECK(ask(t.b, wire::ResetDevice{0, t.hb}) == 0);
  auto read = run_urb(t.b, transfer(UrbType::Bulk, t.hb, 0x82, 64));
  REQUIRE(read);
  CHECK(read->status == UrbStatus::Completed);
}

TEST_CASE("two handles of one connection share the device like two clients") {
  AgentProcess agent{{"--no-usb", "--simulate", "loopback"}};
  WireClient c(agent.port());
  c.handshake();
  const std::uint32_t device = device_with_product(c, loopback_device::kProductId);
  const std::uint32_t h1 = c.request(wire::Open{0, device}).value();
  const std::uint32_t h2 = c.request(wire::Open{0, device}).value();
  REQUIRE(c.request(wire::ClaimInterface{0, h1, 0}));
  CHECK(ask(c, wire::ClaimInterface{0, h2, 0}) == kBusy);
  CHECK(c.last_error_text().find("through another handle of this connection") != std::string::npos);
  auto other_handle = run_urb(c, transfer(UrbType::Bulk, h2, 0x82, 64));
  REQUIRE(other_handle);
  CHECK(other_handle->status == UrbStatus::Error);
  auto claimed_handle = run_urb(c, transfer(UrbType::Bulk, h1, 0x82, 64));
  REQUIRE(claimed_handle);
  CHECK(claimed_handle->status == UrbStatus::Completed);
}

TEST_CASE("an unmodified bulk_loopback keeps its stream while another client attacks it") {
  AgentProcess agent{{"--no-usb", "--simulate", "loopback"}};
  Process victim({Programs::example("bulk_loopback"), loopback_device::kVidPid, "3000"},
                 shim_env(agent));
  WireClient b(agent.port());
  b.handshake();
  const std::uint32_t device = device_with_product(b, loopback_device::kProductId);
  const std::uint32_t hb = b.request(wire::Open{0, device}).value();
  // Waits until the program holds interface 0 (a kernel-driver query is BUSY then): attacking
  // before would be the first to claim, which is allowed.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (ask(b, wire::KernelDriver{0, hb, wire::KernelDriverOp::Query, 0}) != kBusy) {
    REQUIRE(std::chrono::steady_clock::now() < deadline);
    REQUIRE(victim.running());
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  // The program claims once and releases once, at its end: an attack counts when the
  // interface was still the program's after it (a kernel-driver query still BUSY).
  int attacks = 0, refused = 0;
  std::size_t stolen = 0;
  for (;;) {
    auto in = run_urb(b, transfer(UrbType::Bulk, hb, 0x81, 65536, 100));
    REQUIRE(in);
    const bool alt = ask(b, wire::SetAltSetting{0, hb, 0, 0}) == kBusy;
    const bool clear = ask(b, wire::ClearHalt{0, hb, 0x81}) == kBusy;
    const bool reset = ask(b, wire::ResetDevice{0, hb}) == kBusy;
    auto halt = run_urb(b, control(hb, 0x02, 0x03, 0, 0x81, 0));
    auto detach = run_urb(b, control(hb, kVendorOut, kDetach, 100, 0, 0));
    REQUIRE(halt);
    REQUIRE(detach);
    if (ask(b, wire::KernelDriver{0, hb, wire::KernelDriverOp::Query, 0}) != kBusy) break;
    ++attacks;
    if (in->status == UrbStatus::Completed) stolen += in->data.size();
    if (alt && clear && reset && halt->status == UrbStatus::Error &&
        detach->status == UrbStatus::Error) {
      ++refused;
    }
  }
  CHECK(refused == attacks);
  CHECK(stolen == 0);
  INFO(victim.err());
  CHECK(victim.wait(std::chrono::seconds(30)) == 0);
  CHECK(attacks > 0);
}
