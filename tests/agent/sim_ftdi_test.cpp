// The simulated FT232R with its loopback plug through usbnet-agent: the IN framing (modem status
// bytes, full packets at once, the rest after the latency timer), the vendor requests, the
// looped control lines and flow control, and STALL for what the chip does not do
// (docs/DEVICES.md).
#include <catch2/catch.hpp>

#include "support/agent_process.h"
#include "support/wire_client.h"
#include "urb_helpers.h"

using namespace usbnet;
using namespace usbnet::test;
using wire::UrbStatus;
using wire::UrbType;

namespace {

constexpr std::uint16_t kFtdi = 0x0007;
constexpr std::uint8_t kIn = 0x81, kOut = 0x02;
constexpr std::uint8_t kVendorOut = 0x40, kVendorIn = 0xc0;
constexpr std::uint8_t kReset = 0x00, kModemCtrl = 0x01, kSetFlowCtrl = 0x02, kSetBaudRate = 0x03,
                       kSetData = 0x04, kPollModemStatus = 0x05, kSetEventChar = 0x06,
                       kSetLatencyTimer = 0x09, kGetLatencyTimer = 0x0a, kSetBitmode = 0x0b,
                       kReadPins = 0x0c, kReadEeprom = 0x90, kWriteEeprom = 0x91;
constexpr std::uint16_t kPortA = 1;

struct Fixture {
  AgentProcess agent{{"--simulate", "ftdi"}};
  WireClient client{agent.port()};
  std::uint32_t h = 0;
  Fixture() {
    client.handshake();
    h = open_claimed(client, kFtdi);
    REQUIRE(h);
  }
  UrbStatus vendor_out(std::uint8_t request, std::uint16_t value, std::uint16_t index = kPortA) {
    auto done = run_urb(client, control(h, kVendorOut, request, value, index, 0));
    REQUIRE(done);
    return done->status;
  }
  std::optional<wire::Bytes> vendor_in(std::uint8_t request, std::uint16_t length,
                                       std::uint16_t index = kPortA) {
    auto done = run_urb(client, control(h, kVendorIn, request, 0, index, length));
    REQUIRE(done);
    if (done->status != UrbStatus::Completed) return std::nullopt;
    return done->data;
  }
  void write(const wire::Bytes& data) {
    auto done = run_urb(
        client, transfer(UrbType::Bulk, h, kOut, static_cast<std::uint32_t>(data.size())), data);
    REQUIRE(done);
    REQUIRE(done->status == UrbStatus::Completed);
    REQUIRE(done->actual_length == data.size());
  }
  Completion read(std::uint32_t length) {
    auto done = run_urb(client, transfer(UrbType::Bulk, h, kIn, length));
    REQUIRE(done);
    return *done;
  }
};

// The data of a bulk IN transfer without the two status bytes at the head of each 64-byte
// packet; every packet's status bytes must be `status`.
wire::Bytes payload(const wire::Bytes& in, const wire::Bytes& status) {
  wire::Bytes data;
  for (std::size_t at = 0; at < in.size(); at += 64) {
    REQUIRE(in.size() - at >= 2);
    CHECK(wire::Bytes(in.begin() + at, in.begin() + at + 2) == status);
    data.insert(data.end(), in.begin() + at + 2, in.begin() + std::min(at + 64, in.size()));
  }
  return data;
}

}  // namespace

TEST_CASE_METHOD(Fixture,
                 "ftdi: what is written comes back framed in packets with the modem status") {
  const wire::Bytes data = pattern(200, 7);
  write(data);
  // 200 bytes do not fill 8 packets: three full ones, then a short one when the latency timer
  // (16 ms after the last packet) expires.
  const Completion in = read(512);
  CHECK(in.status == UrbStatus::Completed);
  REQUIRE(in.data.size() == 3 * 64 + 2 + 14);
  CHECK(payload(in.data, {0x01, 0x61}) == data);  // DR: received data was waiting
  // Nothing left: the status alone, after the latency timer.
  const Completion idle = read(512);
  CHECK(idle.data == wire::Bytes{0x01, 0x60});  // THRE and TEMT
  // Enough data to fill the transfer comes at once, in full packets; the rest stays.
  const wire::Bytes more = pattern(1000, 1);
  write(more);
  const Completion full = read(256);
  REQUIRE(full.data.size() == 256);
  CHECK(payload(full.data, {0x01, 0x61}) == wire::Bytes(more.begin(), more.begin() + 4 * 62));
  const Completion rest = read(4096);
  CHECK(payload(rest.data, {0x01, 0x61}) == wire::Bytes(more.begin() + 4 * 62, more.end()));
}

TEST_CASE_METHOD(Fixture, "ftdi: a buffer that cannot take a whole packet overflows") {
  write(pattern(200));
  const Completion in = read(100);
  CHECK(in.status == UrbStatus::Overflow);
  CHECK(in.actual_length == 64);
}

TEST_CASE_METHOD(Fixture, "ftdi: the latency timer, the event character and purging") {
  CHECK(vendor_in(kGetLatencyTimer, 1) == wire::Bytes{16});
  CHECK(vendor_out(kSetLatencyTimer, 2) == UrbStatus::Completed);
  CHECK(vendor_in(kGetLatencyTimer, 1) == wire::Bytes{2});
  CHECK(vendor_out(kSetLatencyTimer, 0) == UrbStatus::Stall);
  CHECK(vendor_out(kSetLatencyTimer, 256) == UrbStatus::Stall);
  CHECK(vendor_in(kGetLatencyTimer, 1) == wire::Bytes{2});
  // Latency 255 ms: a short packet waits that long after the last one...
  CHECK(vendor_out(kSetLatencyTimer, 255) == UrbStatus::Completed);
  const auto before_flush = std::chrono::steady_clock::now();
  read(64);  // (the status packet that was due: the last packet before the wait)
  const std::string word = "hello", line = "hello\n";
  write(wire::Bytes(word.begin(), word.end()));
  const Completion late = read(512);
  CHECK(std::chrono::steady_clock::now() - before_flush >= std::chrono::milliseconds(255));
  CHECK(payload(late.data, {0x01, 0x61}) == wire::Bytes(word.begin(), word.end()));
  // ...unless the event character ('\n', enabled) is in: then it goes at once. (Without the
  // event character this read could not end before 255 ms after the previous packet.)
  CHECK(vendor_out(kSetEventChar, 0x100 | '\n') == UrbStatus::Completed);
  const auto after_flush = std::chrono::steady_clock::now();
  write(wire::Bytes(line.begin(), line.end()));
  const Completion at_once = read(512);
  CHECK(std::chrono::steady_clock::now() - after_flush < std::chrono::milliseconds(200));
  CHECK(payload(at_once.data, {0x01, 0x61}) == wire::Bytes(line.begin(), line.end()));
  // RESET wValue 2 empties the receive buffer; 1 (the transmit buffer) leaves it.
  write(pattern(10));
  CHECK(vendor_out(kReset, 1) == UrbStatus::Completed);
  CHECK(vendor_in(kPollModemStatus, 2) == wire::Bytes{0x01, 0x61});
  CHECK(vendor_out(kReset, 2) == UrbStatus::Completed);
  CHECK(vendor_in(kPollModemStatus, 2) == wire::Bytes{0x01, 0x60});
  CHECK(vendor_out(kReset, 3) == UrbStatus::Stall);
}

TEST_CASE_METHOD(Fixture, "ftdi: DTR and RTS come back as DSR, DCD and CTS through the plug") {
  CHECK(vendor_in(kPollModemStatus, 2) == wire::Bytes{0x01, 0x60});
  CHECK(vendor_in(kReadPins, 1) == wire::Bytes{0xff});  // all control lines inactive (high)
  CHECK(vendor_out(kModemCtrl, 0x0101) == UrbStatus::Completed);  // DTR on
  CHECK(vendor_in(kPollModemStatus, 2) == wire::Bytes{0xa1, 0x60});
  CHECK(vendor_out(kModemCtrl, 0x0202) == UrbStatus::Completed);  // RTS on, DTR untouched
  CHECK(vendor_in(kPollModemStatus, 2) == wire::Bytes{0xb1, 0x60});
  CHECK(vendor_in(kReadPins, 1) == wire::Bytes{0x83});
  CHECK(vendor_out(kModemCtrl, 0x0300) == UrbStatus::Completed);  // both off
  CHECK(vendor_in(kPollModemStatus, 2) == wire::Bytes{0x01, 0x60});
}

TEST_CASE_METHOD(Fixture, "ftdi: RTS/CTS flow control holds what is written until RTS is up") {
  CHECK(vendor_out(kSetFlowCtrl, 0, 0x0100 | kPortA) == UrbStatus::Completed);
  const wire::Bytes data = pattern(100, 3);
  const std::uint32_t held = send_urb(
      client, transfer(UrbType::Bulk, h, kOut, static_cast<std::uint32_t>(data.size()), 0), data);
  CHECK(!client.receive_id(held, std::chrono::milliseconds(100)));  // NAKed: CTS is down
  CHECK(vendor_out(kModemCtrl, 0x0202) == UrbStatus::Completed);    // RTS up: CTS up
  auto sent = wait_complete(client, held);
  REQUIRE(sent);
  CHECK(sent->status == UrbStatus::Completed);
  CHECK(payload(read(512).data, {0x11, 0x61}) == data);
  // A break holds the transmitter too, and shows in the line status.
  CHECK(vendor_out(kSetData, 0x4008) == UrbStatus::Completed);
  CHECK(vendor_in(kPollModemStatus, 2) == wire::Bytes{0x11, 0x70});
  CHECK(vendor_out(kSetData, 0x0008) == UrbStatus::Completed);
}

TEST_CASE_METHOD(Fixture, "ftdi: the baud rate divisor and the line settings are decoded") {
  struct Case {
    std::uint16_t value, index;
    const char* line;
  };
  for (const Case& c : {Case{0x4138, 0, "simulated ftdi: 9600 baud, 8N1"},  // 312.5
                        Case{26, 0, "simulated ftdi: 115385 baud, 8N1"},
                        Case{0, 0, "simulated ftdi: 3000000 baud, 8N1"},
                        Case{1, 0, "simulated ftdi: 2000000 baud, 8N1"},
                        Case{100, 1, "simulated ftdi: 29888 baud, 8N1"}}) {  // 100.375
    CHECK(vendor_out(kSetBaudRate, c.value, c.index) == UrbStatus::Completed);
    CHECK(agent.process().wait_for_output(c.line, std::chrono::seconds(5)));
  }
  CHECK(vendor_out(kSetData, 0x1207) == UrbStatus::Completed);  // 7 bits, even, 2 stop bits
  CHECK(
      agent.process().wait_for_output("simulated ftdi: 29888 baud, 7E2", std::chrono::seconds(5)));
  CHECK(vendor_out(kSetBaudRate, 26, 2) == UrbStatus::Stall);  // no such divisor bits here
}

TEST_CASE_METHOD(Fixture, "ftdi: what the FT232R does not do STALLs") {
  CHECK(vendor_out(kSetData, 0x0006) == UrbStatus::Stall);                  // 6 data bits
  CHECK(vendor_out(kSetData, 0x0508) == UrbStatus::Stall);                  // parity 5
  CHECK(vendor_out(kSetData, 0x1808) == UrbStatus::Stall);                  // stop bits 3
  CHECK(vendor_out(kSetFlowCtrl, 0, 0x0300 | kPortA) == UrbStatus::Stall);  // two modes
  CHECK(vendor_out(kModemCtrl, 0x0101, 2) == UrbStatus::Stall);             // port B
  CHECK(vendor_out(kSetBitmode, 0x01ff) == UrbStatus::Stall);      // bit-bang: not simulated
  CHECK(vendor_out(kSetBitmode, 0x0000) == UrbStatus::Completed);  // back to serial
  CHECK(vendor_out(kWriteEeprom, 0x1234, 0) == UrbStatus::Stall);
  CHECK(vendor_out(0x55, 0) == UrbStatus::Stall);
  CHECK(!vendor_in(0x55, 2));
  auto wrong_type = run_urb(client, control(h, 0x41, kReset, 0, 0, 0));  // vendor, interface
  REQUIRE(wrong_type);
  CHECK(wrong_type->status == UrbStatus::Stall);
  // And the device goes on.
  write(pattern(10));
  CHECK(payload(read(64).data, {0x01, 0x61}) == pattern(10));
}

TEST_CASE_METHOD(Fixture, "ftdi: the EEPROM: IDs, strings, checksum, and the 64 words wrap") {
  wire::Bytes eeprom;
  for (std::uint16_t word = 0; word < 128; ++word) {
    auto w = vendor_in(kReadEeprom, 2, word);
    REQUIRE(w);
    REQUIRE(w->size() == 2);
    eeprom.insert(eeprom.end(), w->begin(), w->end());
  }
  CHECK(wire::Bytes(eeprom.begin(), eeprom.begin() + 128) ==
        wire::Bytes(eeprom.begin() + 128, eeprom.end()));
  CHECK(wire::Bytes(eeprom.begin() + 2, eeprom.begin() + 8) ==
        wire::Bytes{0x09, 0x12, 0x07, 0x00, 0x00, 0x06});
  std::uint16_t checksum = 0xaaaa;
  for (std::size_t i = 0; i < 63; ++i) {
    checksum ^= static_cast<std::uint16_t>(eeprom[2 * i] | eeprom[2 * i + 1] << 8);
    checksum = static_cast<std::uint16_t>(checksum << 1 | checksum >> 15);
  }
  CHECK((eeprom[126] | eeprom[127] << 8) == checksum);
  // The product string: a string descriptor at the offset the header gives.
  const std::size_t at = eeprom[0x10] & 0x7f;
  REQUIRE(eeprom[0x11] == 2 + 2 * 15);
  std::string product;
  for (std::size_t i = at + 2; i < at + eeprom[0x11]; i += 2)
    product += static_cast<char>(eeprom[i]);
  CHECK(product == "FT232R USB UART");
}
