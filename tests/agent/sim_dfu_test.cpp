// The simulated DFU 1.1 bootloader through usbnet-agent, request by request: its descriptors,
// the download and upload state machine with bwPollTimeout, and the error states a host's
// misuse ends in (docs/DEVICES.md).
#include <catch2/catch.hpp>
#include <thread>

#include "support/agent_process.h"
#include "support/wire_client.h"
#include "urb_helpers.h"

using namespace usbnet;
using namespace usbnet::test;
using wire::UrbStatus;

namespace {

constexpr std::uint16_t kDfu = 0x0005;
constexpr std::uint8_t kOut = 0x21, kIn = 0xa1;  // class, interface
constexpr std::uint8_t kDetach = 0, kDnload = 1, kUpload = 2, kGetStatus = 3, kClrStatus = 4,
                       kGetState = 5, kAbort = 6;
constexpr std::uint8_t kIdle = 2, kDnloadSync = 3, kDnBusy = 4, kDnloadIdle = 5, kManifest = 7,
                       kError = 10;
constexpr std::uint8_t kOk = 0x00, kErrAddress = 0x08, kErrStalledPkt = 0x0f;
constexpr std::size_t kFlash = 256 * 1024, kBlock = 2048;

struct DfuStatus {
  std::uint8_t status;
  std::uint32_t poll_ms;
  std::uint8_t state;
};

struct Fixture {
  AgentProcess agent{{"--simulate", "dfu"}};
  WireClient client{agent.port()};
  std::uint32_t h = 0;
  Fixture() {
    client.handshake();
    h = open_claimed(client, kDfu);
    REQUIRE(h);
  }

  UrbStatus request(std::uint8_t type, std::uint8_t request, std::uint16_t value = 0,
                    wire::ByteView data = {}, std::uint16_t index = 0) {
    auto done = run_urb(
        client, control(h, type, request, value, index, static_cast<std::uint16_t>(data.size())),
        data);
    REQUIRE(done);
    return done->status;
  }
  std::optional<DfuStatus> status() {
    auto done = run_urb(client, control(h, kIn, kGetStatus, 0, 0, 6));
    REQUIRE(done);
    if (done->status != UrbStatus::Completed) return std::nullopt;
    REQUIRE(done->data.size() == 6);
    CHECK(done->data[5] == 0);  // iString
    return DfuStatus{
        done->data[0],
        static_cast<std::uint32_t>(done->data[1] | done->data[2] << 8 | done->data[3] << 16),
        done->data[4]};
  }
  std::uint8_t state() {
    auto done = run_urb(client, control(h, kIn, kGetState, 0, 0, 1));
    REQUIRE(done);
    REQUIRE(done->status == UrbStatus::Completed);
    REQUIRE(done->data.size() == 1);
    return done->data[0];
  }
  // DNLOAD one block, then GETSTATUS through dfuDNBUSY as the device's bwPollTimeout says.
  DfuStatus download_block(std::uint16_t number, const wire::Bytes& data) {
    REQUIRE(request(kOut, kDnload, number, data) == UrbStatus::Completed);
    auto busy = status();
    REQUIRE(busy);
    if (busy->state != kDnBusy) return *busy;
    std::this_thread::sleep_for(std::chrono::milliseconds(busy->poll_ms));
    auto after = status();
    REQUIRE(after);
    return *after;
  }
  wire::Bytes upload_block(std::uint16_t number, std::uint16_t length) {
    auto done = run_urb(client, control(h, kIn, kUpload, number, 0, length));
    REQUIRE(done);
    REQUIRE(done->status == UrbStatus::Completed);
    return done->data;
  }
};

}  // namespace

TEST_CASE_METHOD(Fixture, "dfu: a DFU-mode interface with the DFU functional descriptor") {
  const wire::Bytes functional{9, 0x21, 0x07, 0xe8, 0x03, 0x00, 0x08, 0x10, 0x01};
  auto config = run_urb(client, control(h, 0x80, 0x06, 0x0200, 0, 255));
  REQUIRE(config);
  const wire::Bytes expected_interface{9, 0x04, 0, 0, 0, 0xfe, 0x01, 0x02, 4};
  REQUIRE(config->data.size() == 9 + 9 + 9);
  CHECK(wire::Bytes(config->data.begin() + 9, config->data.begin() + 18) == expected_interface);
  CHECK(wire::Bytes(config->data.begin() + 18, config->data.end()) == functional);
  // GET_DESCRIPTOR(DFU FUNCTIONAL) to the interface, as dfu-util asks when it finds none.
  auto direct = run_urb(client, control(h, 0x81, 0x06, 0x2100, 0, 9));
  REQUIRE(direct);
  CHECK(direct->data == functional);
  auto idle = status();
  REQUIRE(idle);
  CHECK(idle->status == kOk);
  CHECK(idle->state == kIdle);
  CHECK(idle->poll_ms == 0);
}

TEST_CASE_METHOD(Fixture, "dfu: a download through the state machine, manifested, uploads back") {
  const wire::Bytes first = pattern(kBlock, 3), second = pattern(1000, 77);
  REQUIRE(request(kOut, kDnload, 0, first) == UrbStatus::Completed);
  CHECK(state() == kDnloadSync);  // GETSTATE changes nothing
  CHECK(state() == kDnloadSync);
  auto busy = status();
  REQUIRE(busy);
  CHECK(busy->status == kOk);
  CHECK(busy->state == kDnBusy);
  CHECK(busy->poll_ms == 505);  // erasing the flash and programming the first block
  std::this_thread::sleep_for(std::chrono::milliseconds(busy->poll_ms));
  auto idle = status();
  REQUIRE(idle);
  CHECK(idle->state == kDnloadIdle);
  CHECK(idle->poll_ms == 0);

  REQUIRE(request(kOut, kDnload, 1, second) == UrbStatus::Completed);
  busy = status();
  REQUIRE(busy);
  CHECK(busy->state == kDnBusy);
  CHECK(busy->poll_ms == 5);
  std::this_thread::sleep_for(std::chrono::milliseconds(busy->poll_ms));
  CHECK(status()->state == kDnloadIdle);

  // A zero-length DNLOAD ends the image: dfuMANIFEST-SYNC, then dfuMANIFEST for its poll time,
  // then (manifestation tolerant) dfuIDLE.
  REQUIRE(request(kOut, kDnload, 2) == UrbStatus::Completed);
  auto manifest = status();
  REQUIRE(manifest);
  CHECK(manifest->state == kManifest);
  CHECK(manifest->poll_ms == 10);
  std::this_thread::sleep_for(std::chrono::milliseconds(manifest->poll_ms));
  auto done = status();
  REQUIRE(done);
  CHECK(done->state == kIdle);
  CHECK(done->status == kOk);

  CHECK(upload_block(0, kBlock) == first);
  CHECK(state() == 9);                       // dfuUPLOAD-IDLE
  CHECK(upload_block(1, kBlock) == second);  // short: the upload is over
  CHECK(state() == kIdle);
  // An upload can be abandoned with ABORT.
  CHECK(upload_block(0, 100) == wire::Bytes(first.begin(), first.begin() + 100));
  CHECK(request(kOut, kAbort) == UrbStatus::Completed);
  CHECK(state() == kIdle);
}

TEST_CASE_METHOD(Fixture, "dfu: requests out of turn STALL into dfuERROR, CLRSTATUS recovers") {
  auto expect_error = [&](std::uint8_t status_code) {
    auto s = status();
    REQUIRE(s);
    CHECK(s->state == kError);
    CHECK(s->status == status_code);
    // In dfuERROR everything but GETSTATUS, GETSTATE and CLRSTATUS STALLs, and the first
    // status stays.
    CHECK(request(kOut, kAbort) == UrbStatus::Stall);
    CHECK(status()->status == status_code);
    CHECK(request(kOut, kClrStatus) == UrbStatus::Completed);
    CHECK(state() == kIdle);
  };
  SECTION("a block longer than wTransferSize") {
    CHECK(request(kOut, kDnload, 0, pattern(kBlock + 1)) == UrbStatus::Stall);
    expect_error(kErrStalledPkt);
  }
  SECTION("an upload longer than wTransferSize") {
    auto done = run_urb(client, control(h, kIn, kUpload, 0, 0, kBlock * 2));
    REQUIRE(done);
    CHECK(done->status == UrbStatus::Stall);
    expect_error(kErrStalledPkt);
  }
  SECTION("an empty download in dfuIDLE") {
    CHECK(request(kOut, kDnload, 0) == UrbStatus::Stall);
    expect_error(kErrStalledPkt);
  }
  SECTION("DETACH, a run-time request") {
    CHECK(request(kOut, kDetach, 1000) == UrbStatus::Stall);
    expect_error(kErrStalledPkt);
  }
  SECTION("CLRSTATUS when there is no error") {
    CHECK(request(kOut, kClrStatus) == UrbStatus::Stall);
    expect_error(kErrStalledPkt);
  }
  SECTION("an upload in the middle of a download") {
    REQUIRE(download_block(0, pattern(kBlock)).state == kDnloadIdle);
    auto done = run_urb(client, control(h, kIn, kUpload, 0, 0, kBlock));
    REQUIRE(done);
    CHECK(done->status == UrbStatus::Stall);
    expect_error(kErrStalledPkt);
  }
  SECTION("GETSTATUS before bwPollTimeout has passed") {
    REQUIRE(request(kOut, kDnload, 0, pattern(kBlock)) == UrbStatus::Completed);
    auto busy = status();
    REQUIRE(busy);
    REQUIRE(busy->state == kDnBusy);
    REQUIRE(busy->poll_ms >= 500);  // long enough that the next request comes too early
    CHECK(!status());               // STALL
    expect_error(kErrStalledPkt);
  }
  SECTION("an unknown request") {
    CHECK(request(kOut, 0x42) == UrbStatus::Stall);
    expect_error(kErrStalledPkt);
  }
  SECTION("a request to another interface is not DFU's: STALL, the state unchanged") {
    REQUIRE(download_block(0, pattern(kBlock)).state == kDnloadIdle);
    CHECK(request(kOut, kAbort, 0, {}, 1) == UrbStatus::Stall);
    CHECK(state() == kDnloadIdle);
    CHECK(request(kOut, kAbort) == UrbStatus::Completed);
    CHECK(state() == kIdle);
  }
}

TEST_CASE_METHOD(Fixture, "dfu: an image larger than the flash ends in dfuERROR with errADDRESS") {
  const wire::Bytes image = pattern(kFlash + 1000, 11);
  std::uint16_t block = 0;
  for (std::size_t at = 0; at < kFlash; at += kBlock, ++block) {
    const DfuStatus s = download_block(
        block, wire::Bytes(image.begin() + static_cast<std::ptrdiff_t>(at),
                           image.begin() + static_cast<std::ptrdiff_t>(at + kBlock)));
    REQUIRE(s.state == kDnloadIdle);
  }
  // The block past the end is taken, and its programming fails.
  REQUIRE(request(kOut, kDnload, block, wire::Bytes(image.begin() + kFlash, image.end())) ==
          UrbStatus::Completed);
  auto failed = status();
  REQUIRE(failed);
  CHECK(failed->state == kError);
  CHECK(failed->status == kErrAddress);
  CHECK(failed->poll_ms == 0);
  CHECK(request(kOut, kClrStatus) == UrbStatus::Completed);
  // What fitted was programmed: the whole flash uploads back.
  wire::Bytes back;
  for (std::uint16_t n = 0;; ++n) {
    const wire::Bytes part = upload_block(n, kBlock);
    back.insert(back.end(), part.begin(), part.end());
    if (part.size() < kBlock) break;
    REQUIRE(back.size() <= kFlash);
  }
  CHECK(back == wire::Bytes(image.begin(), image.begin() + kFlash));
}

TEST_CASE_METHOD(Fixture, "dfu: SET_INTERFACE keeps the state, a USB reset returns to dfuIDLE") {
  CHECK(request(kOut, kDetach, 1000) == UrbStatus::Stall);
  REQUIRE(client.request(wire::SetAltSetting{0, h, 0, 0}));
  CHECK(status()->status == kErrStalledPkt);  // still in dfuERROR: the host must clear it
  CHECK(request(kOut, kClrStatus) == UrbStatus::Completed);
  REQUIRE(download_block(0, pattern(300, 9)).state == kDnloadIdle);
  REQUIRE(client.request(wire::SetAltSetting{0, h, 0, 0}));
  CHECK(state() == kDnloadIdle);
  REQUIRE(request(kOut, kDnload, 1) == UrbStatus::Completed);
  CHECK(state() == 6);  // dfuMANIFEST-SYNC
  REQUIRE(client.request(wire::ResetDevice{0, h}));
  CHECK(state() == kIdle);
  CHECK(upload_block(0, kBlock) == pattern(300, 9));  // the flash kept it
}
