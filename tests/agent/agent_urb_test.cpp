// URBs through usbnet-agent to the simulated devices: standard and vendor control requests,
// STALL and its clearing, bulk loopback under USB's packet rules, payloads in pieces, timeouts,
// cancellation, interrupt and isochronous transfers, and a device that leaves.
#include <catch2/catch.hpp>

#include "support/agent_process.h"
#include "support/wire_client.h"
#include "urb_helpers.h"

using namespace usbnet;
using namespace usbnet::test;
using wire::UrbStatus;
using wire::UrbType;

namespace {

struct Fixture {
  AgentProcess agent{{"--simulate", "loopback,mouse,audio"}};
  WireClient client{agent.port()};
  Fixture() { client.handshake(); }
};

constexpr std::uint8_t kStandardIn = 0x80, kVendorOut = 0x40, kVendorIn = 0xc0;

}  // namespace

TEST_CASE_METHOD(Fixture, "standard requests: descriptors, status, configuration") {
  const std::uint32_t h = open_claimed(client, loopback_device::kProductId);
  REQUIRE(h);
  auto device = run_urb(client, control(h, kStandardIn, 0x06, 0x0100, 0, 18));
  REQUIRE(device);
  CHECK(device->status == UrbStatus::Completed);
  CHECK(device->data == wire::Bytes{0x12, 0x01, 0x01, 0x02, 0x00, 0x00, 0x00, 0x40, 0x09, 0x12,
                                    0x01, 0x00, 0x00, 0x01, 0x01, 0x02, 0x03, 0x01});
  // A short read of the configuration gives its first bytes; wTotalLength is in them.
  auto head = run_urb(client, control(h, kStandardIn, 0x06, 0x0200, 0, 9));
  REQUIRE(head);
  REQUIRE(head->data.size() == 9);
  const unsigned total = head->data[2] | head->data[3] << 8;
  CHECK(total == 9 + 9 + 6 * 7);
  auto product = run_urb(client, control(h, kStandardIn, 0x06, 0x0302, 0x0409, 255));
  REQUIRE(product);
  CHECK(product->data ==
        wire::Bytes{18, 3, 'L', 0, 'o', 0, 'o', 0, 'p', 0, 'b', 0, 'a', 0, 'c', 0, 'k', 0});
  auto status = run_urb(client, control(h, kStandardIn, 0x00, 0, 0, 2));
  REQUIRE(status);
  CHECK(status->data == wire::Bytes{0, 0});
  auto config = run_urb(client, control(h, kStandardIn, 0x08, 0, 0, 1));
  REQUIRE(config);
  CHECK(config->data == wire::Bytes{1});
  auto qualifier = run_urb(client, control(h, kStandardIn, 0x06, 0x0600, 0, 10));
  REQUIRE(qualifier);
  CHECK(qualifier->status == UrbStatus::Completed);
  CHECK(qualifier->data.size() == 10);
  auto address = run_urb(client, control(h, 0x00, 0x05, 9, 0, 0));  // SET_ADDRESS
  REQUIRE(address);
  CHECK(address->status == UrbStatus::Stall);
}

TEST_CASE_METHOD(Fixture, "vendor requests: buffer round trip, STALL, recovery") {
  const std::uint32_t h = open_claimed(client, loopback_device::kProductId);
  const wire::Bytes data = pattern(3000, 17);
  auto write = run_urb(client, control(h, kVendorOut, 0x01, 0, 0, 3000), data);
  REQUIRE(write);
  CHECK(write->status == UrbStatus::Completed);
  CHECK(write->actual_length == 3000);
  auto read = run_urb(client, control(h, kVendorIn, 0x02, 0, 0, 4096));
  REQUIRE(read);
  CHECK(read->data == data);
  auto stall = run_urb(client, control(h, kVendorIn, 0x03, 0, 0, 8));
  REQUIRE(stall);
  CHECK(stall->status == UrbStatus::Stall);
  CHECK(stall->data.empty());
  auto after = run_urb(client, control(h, kStandardIn, 0x00, 0, 0, 2));
  REQUIRE(after);
  CHECK(after->status == UrbStatus::Completed);
}

TEST_CASE_METHOD(Fixture, "a halted endpoint stalls until CLEAR_HALT") {
  const std::uint32_t h = open_claimed(client, loopback_device::kProductId);
  auto halt = run_urb(client, control(h, 0x02, 0x03, 0, 0x82, 0));  // SET_FEATURE(ENDPOINT_HALT)
  REQUIRE(halt);
  CHECK(halt->status == UrbStatus::Completed);
  auto status = run_urb(client, control(h, 0x82, 0x00, 0, 0x82, 2));
  REQUIRE(status);
  CHECK(status->data == wire::Bytes{1, 0});
  auto stalled = run_urb(client, transfer(UrbType::Bulk, h, 0x82, 512));
  REQUIRE(stalled);
  CHECK(stalled->status == UrbStatus::Stall);
  REQUIRE(client.request(wire::ClearHalt{0, h, 0x82}));
  auto flowing = run_urb(client, transfer(UrbType::Bulk, h, 0x82, 512));
  REQUIRE(flowing);
  CHECK(flowing->status == UrbStatus::Completed);
  CHECK(flowing->data == pattern(512));
}

TEST_CASE_METHOD(Fixture, "bulk loopback follows USB's packet rules") {
  const std::uint32_t h = open_claimed(client, loopback_device::kProductId);
  SECTION("a short message ends the transfer early") {
    REQUIRE(run_urb(client, transfer(UrbType::Bulk, h, 0x01, 100), pattern(100)));
    auto in = run_urb(client, transfer(UrbType::Bulk, h, 0x81, 4096));
    REQUIRE(in);
    CHECK(in->status == UrbStatus::Completed);
    CHECK(in->data == pattern(100));
  }
  SECTION("a longer message fills a multiple-of-512 buffer and the rest waits") {
    REQUIRE(run_urb(client, transfer(UrbType::Bulk, h, 0x01, 1500), pattern(1500)));
    auto first = run_urb(client, transfer(UrbType::Bulk, h, 0x81, 1024));
    auto rest = run_urb(client, transfer(UrbType::Bulk, h, 0x81, 1024));
    REQUIRE(first);
    REQUIRE(rest);
    CHECK(first->data == pattern(1024));
    const wire::Bytes whole = pattern(1500);
    CHECK(rest->data == wire::Bytes(whole.begin() + 1024, whole.end()));
  }
  SECTION("a buffer that is not a multiple of the packet size overflows") {
    REQUIRE(run_urb(client, transfer(UrbType::Bulk, h, 0x01, 100), pattern(100)));
    auto in = run_urb(client, transfer(UrbType::Bulk, h, 0x81, 10));
    REQUIRE(in);
    CHECK(in->status == UrbStatus::Overflow);
    CHECK(in->actual_length == 0);
  }
  SECTION("zero-length OUT and IN") {
    REQUIRE(run_urb(client, transfer(UrbType::Bulk, h, 0x01, 0)));
    auto in = run_urb(client, transfer(UrbType::Bulk, h, 0x81, 512));
    REQUIRE(in);
    CHECK(in->status == UrbStatus::Completed);
    CHECK(in->actual_length == 0);
  }
}

TEST_CASE_METHOD(Fixture, "payloads of megabytes travel in pieces, both ways, intact") {
  const std::uint32_t h = open_claimed(client, loopback_device::kProductId);
  const wire::Bytes big = pattern(3 * 1024 * 1024 + 123, 5);
  auto out = run_urb(client,
                     transfer(UrbType::Bulk, h, 0x01, static_cast<std::uint32_t>(big.size())), big);
  REQUIRE(out);
  CHECK(out->status == UrbStatus::Completed);
  CHECK(out->actual_length == big.size());
  auto in = run_urb(client, transfer(UrbType::Bulk, h, 0x81, 4 * 1024 * 1024));
  REQUIRE(in);
  CHECK(in->status == UrbStatus::Completed);
  CHECK(in->data == big);
  // The source: a megabyte of the pattern from offset 0.
  auto source = run_urb(client, transfer(UrbType::Bulk, h, 0x82, 1 << 20));
  REQUIRE(source);
  CHECK(source->data == pattern(1 << 20));
}

TEST_CASE_METHOD(Fixture, "a slow request times out with TIMED_OUT at the agent") {
  const std::uint32_t h = open_claimed(client, loopback_device::kProductId);
  const auto start = std::chrono::steady_clock::now();
  auto slow = run_urb(client, control(h, kVendorIn, 0x04, 2000, 0, 4, 150));
  REQUIRE(slow);
  CHECK(slow->status == UrbStatus::TimedOut);
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::milliseconds(1500));
  // And a waiting bulk IN times out too.
  auto idle = run_urb(client, transfer(UrbType::Bulk, h, 0x81, 512, 100));
  REQUIRE(idle);
  CHECK(idle->status == UrbStatus::TimedOut);
}

TEST_CASE_METHOD(Fixture, "URB_CANCEL ends a waiting transfer with CANCELLED") {
  const std::uint32_t h = open_claimed(client, loopback_device::kProductId);
  const std::uint32_t waiting = send_urb(client, transfer(UrbType::Bulk, h, 0x81, 512, 0));
  client.send(wire::UrbCancel{waiting});
  auto done = wait_complete(client, waiting);
  REQUIRE(done);
  CHECK(done->status == UrbStatus::Cancelled);
  // Cancelling what is no longer in flight is ignored; the connection lives on.
  client.send(wire::UrbCancel{waiting});
  CHECK(client.request(wire::GetConfiguration{0, h}).value() == 1);
}

TEST_CASE_METHOD(Fixture, "transfers on one endpoint complete in order, other endpoints go on") {
  const std::uint32_t h = open_claimed(client, loopback_device::kProductId);
  // Three reads wait on the empty loopback queue; the source endpoint is not held up by them.
  std::vector<std::uint32_t> reads;
  for (int i = 0; i < 3; ++i)
    reads.push_back(send_urb(client, transfer(UrbType::Bulk, h, 0x81, 512)));
  auto source = run_urb(client, transfer(UrbType::Bulk, h, 0x82, 64));
  REQUIRE(source);
  CHECK(source->status == UrbStatus::Completed);
  for (int i = 0; i < 3; ++i) {
    REQUIRE(run_urb(client, transfer(UrbType::Bulk, h, 0x01, 10),
                    wire::Bytes(10, static_cast<std::uint8_t>(i))));
  }
  for (int i = 0; i < 3; ++i) {
    auto in = wait_complete(client, reads[i]);
    REQUIRE(in);
    CHECK(in->data == wire::Bytes(10, static_cast<std::uint8_t>(i)));
  }
}

TEST_CASE_METHOD(Fixture, "the mouse reports every 10 ms, walking a square") {
  const std::uint32_t h = open_claimed(client, 0x0002);
  REQUIRE(h);
  std::vector<std::uint32_t> ids;
  for (int i = 0; i < 30; ++i)
    ids.push_back(send_urb(client, transfer(UrbType::Interrupt, h, 0x81, 4)));
  const auto start = std::chrono::steady_clock::now();
  for (int k = 0; k < 30; ++k) {
    auto report = wait_complete(client, ids[k]);
    REQUIRE(report);
    REQUIRE(report->data.size() == 4);
    const int phase = (k / 25) % 4;
    CHECK(report->data[0] == (k % 25 == 0 ? 1 : 0));
    CHECK(static_cast<std::int8_t>(report->data[1]) == std::array<int, 4>{4, 0, -4, 0}[phase]);
    CHECK(static_cast<std::int8_t>(report->data[2]) == std::array<int, 4>{0, 4, 0, -4}[phase]);
  }
  // Paced, not instant: 30 reports cannot come faster than 29 intervals of 10 ms.
  CHECK(std::chrono::steady_clock::now() - start >= std::chrono::milliseconds(250));
  auto report_descriptor = run_urb(client, control(h, 0x81, 0x06, 0x2200, 0, 255));
  REQUIRE(report_descriptor);
  CHECK(report_descriptor->data.size() == 52);
  CHECK(report_descriptor->data[0] == 0x05);
}

TEST_CASE_METHOD(Fixture, "isochronous IN packets carry their own lengths, bytes and statuses") {
  const std::uint32_t h = open_claimed(client, 0x0003);
  REQUIRE(h);
  REQUIRE(client.request(wire::SetAltSetting{0, h, 0, 1}));
  wire::UrbSubmit iso = transfer(UrbType::Iso, h, 0x81, 0);
  iso.iso_lengths.assign(70, 192);
  iso.data_len = 70 * 192;
  auto done = run_urb(client, iso);
  REQUIRE(done);
  CHECK(done->status == UrbStatus::Completed);
  REQUIRE(done->iso.size() == 70);
  std::size_t at = 0;
  for (std::uint32_t f = 0; f < 70; ++f) {
    INFO("packet " << f);
    if (f % 64 == 63) {
      CHECK(done->iso[f].status == UrbStatus::Error);
      CHECK(done->iso[f].actual_length == 0);
      continue;
    }
    CHECK(done->iso[f].status == UrbStatus::Completed);
    REQUIRE(done->iso[f].actual_length == 176 + 4 * (f % 5));
    for (std::uint32_t i = 0; i < done->iso[f].actual_length; ++i) {
      REQUIRE(done->data[at + i] == static_cast<std::uint8_t>((f + i) % 256));
    }
    at += done->iso[f].actual_length;
  }
  CHECK(at == done->data.size());
}

TEST_CASE_METHOD(Fixture, "a URB for an endpoint the setting does not have fails") {
  const std::uint32_t h = open_claimed(client, 0x0003);
  wire::UrbSubmit iso = transfer(UrbType::Iso, h, 0x81, 192);
  iso.iso_lengths = {192};
  auto done = run_urb(client, iso);  // alt 0 has no endpoints
  REQUIRE(done);
  CHECK(done->status == UrbStatus::Error);
}

TEST_CASE_METHOD(Fixture,
                 "a device that leaves ends its transfers with NO_DEVICE, then comes back") {
  const std::uint32_t h = open_claimed(client, loopback_device::kProductId);
  const auto before = client.list();
  REQUIRE(before.size() == 4);  // the root hub, then the loopback, mouse and audio devices
  const std::uint32_t hub_id = before[0].device_id;
  const std::uint32_t old_id = before[1].device_id;
  CHECK(before[1].parent_id == hub_id);
  const std::uint32_t waiting = send_urb(client, transfer(UrbType::Bulk, h, 0x81, 512, 0));
  auto detach = run_urb(client, control(h, kVendorOut, 0x07, 300, 0, 0));  // DETACH for 300 ms
  REQUIRE(detach);
  CHECK(detach->status == UrbStatus::Completed);
  auto ended = wait_complete(client, waiting);
  REQUIRE(ended);
  CHECK(ended->status == UrbStatus::NoDevice);
  auto left = client.receive_id(0);
  REQUIRE(left);
  REQUIRE(left->as<wire::DeviceLeft>());
  CHECK(left->as<wire::DeviceLeft>()->device_id == old_id);
  CHECK(client.request(wire::GetConfiguration{0, h}).error() == wire::error_code::kNoDevice);
  auto late = run_urb(client, transfer(UrbType::Bulk, h, 0x82, 64));
  REQUIRE(late);
  CHECK(late->status == UrbStatus::NoDevice);
  auto arrived = client.receive_id(0, std::chrono::seconds(3));
  REQUIRE(arrived);
  REQUIRE(arrived->as<wire::DeviceArrived>());
  const auto& back = arrived->as<wire::DeviceArrived>()->device;
  CHECK(back.device_id != old_id);
  CHECK(back.device_descriptor[10] == 0x01);
  // Back on its port of the same root hub, which stayed.
  CHECK(back.parent_id == hub_id);
  CHECK(back.port_numbers == before[1].port_numbers);
  CHECK(client.request(wire::Close{0, h}));
  const std::uint32_t again = client.request(wire::Open{0, back.device_id}).value();
  CHECK(client.request(wire::ClaimInterface{0, again, 0}));
}
