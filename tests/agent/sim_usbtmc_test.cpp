// The simulated USBTMC/USB488 instrument through usbnet-agent, message by message: the bulk
// headers with bTag, transfer sizes, EOM and TermChar, the class requests, the status byte on
// the interrupt endpoint, the SCPI error queue, and how misuse ends (docs/DEVICES.md).
#include <catch2/catch.hpp>

#include "support/agent_process.h"
#include "support/wire_client.h"
#include "urb_helpers.h"

using namespace usbnet;
using namespace usbnet::test;
using wire::UrbStatus;
using wire::UrbType;

namespace {

constexpr std::uint16_t kUsbtmc = 0x0006;
constexpr std::uint8_t kBulkOut = 0x01, kBulkIn = 0x82, kInterruptIn = 0x83;
constexpr std::uint8_t kInterfaceIn = 0xa1, kEndpointIn = 0xa2;
constexpr std::uint8_t kSuccess = 0x01, kFailed = 0x80;

void put32(wire::Bytes& b, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) b.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}

// DEV_DEP_MSG_OUT with its header and alignment.
wire::Bytes message_out(std::uint8_t tag, const std::string& text, bool eom = true) {
  wire::Bytes b{1, tag, static_cast<std::uint8_t>(~tag), 0};
  put32(b, static_cast<std::uint32_t>(text.size()));
  b.insert(b.end(), {static_cast<std::uint8_t>(eom ? 1 : 0), 0, 0, 0});
  b.insert(b.end(), text.begin(), text.end());
  b.resize((b.size() + 3) / 4 * 4, 0);
  return b;
}

wire::Bytes request_in(std::uint8_t tag, std::uint32_t size, int term_char = -1) {
  wire::Bytes b{2, tag, static_cast<std::uint8_t>(~tag), 0};
  put32(b, size);
  b.insert(b.end(), {static_cast<std::uint8_t>(term_char >= 0 ? 2 : 0),
                     static_cast<std::uint8_t>(term_char >= 0 ? term_char : 0), 0, 0});
  return b;
}

// A DEV_DEP_MSG_IN as it came back.
struct Response {
  std::uint8_t tag;
  std::uint8_t attributes;
  std::string data;
};

struct Fixture {
  AgentProcess agent{{"--simulate", "usbtmc"}};
  WireClient client{agent.port()};
  std::uint32_t h = 0;
  std::uint8_t tag = 0;
  Fixture() {
    client.handshake();
    h = open_claimed(client, kUsbtmc);
    REQUIRE(h);
  }
  std::uint8_t next_tag() {
    tag = static_cast<std::uint8_t>(tag % 255 + 1);
    return tag;
  }
  UrbStatus out(const wire::Bytes& bytes) {
    auto done = run_urb(
        client, transfer(UrbType::Bulk, h, kBulkOut, static_cast<std::uint32_t>(bytes.size())),
        bytes);
    REQUIRE(done);
    return done->status;
  }
  void write(const std::string& text) {
    REQUIRE(out(message_out(next_tag(), text)) == UrbStatus::Completed);
  }
  Response read(std::uint32_t size = 1024, int term_char = -1) {
    const std::uint8_t t = next_tag();
    REQUIRE(out(request_in(t, size, term_char)) == UrbStatus::Completed);
    auto in = run_urb(client, transfer(UrbType::Bulk, h, kBulkIn, 2048));
    REQUIRE(in);
    REQUIRE(in->status == UrbStatus::Completed);
    const wire::Bytes& b = in->data;
    REQUIRE(b.size() >= 12);
    CHECK(b.size() % 4 == 0);  // alignment
    CHECK(b[0] == 2);          // DEV_DEP_MSG_IN
    CHECK(b[1] == t);
    CHECK(b[2] == static_cast<std::uint8_t>(~t));
    const std::uint32_t n = b[4] | b[5] << 8 | b[6] << 16 | b[7] << 24;
    REQUIRE(12 + n <= b.size());
    CHECK(b.size() - (12 + n) < 4);
    return {b[1], b[8], std::string(b.begin() + 12, b.begin() + 12 + n)};
  }
  std::string query(const std::string& text) {
    write(text);
    const Response r = read();
    CHECK(r.attributes == 0x01);  // EOM
    return r.data;
  }
  wire::Bytes class_request(std::uint8_t type, std::uint8_t request, std::uint16_t value,
                            std::uint16_t index, std::uint16_t length) {
    auto done = run_urb(client, control(h, type, request, value, index, length));
    REQUIRE(done);
    REQUIRE(done->status == UrbStatus::Completed);
    return done->data;
  }
};

}  // namespace

TEST_CASE_METHOD(Fixture, "usbtmc: USB488 interface and capabilities") {
  auto config = run_urb(client, control(h, 0x80, 0x06, 0x0200, 0, 255));
  REQUIRE(config);
  REQUIRE(config->data.size() == 9 + 9 + 3 * 7);
  CHECK(wire::Bytes(config->data.begin() + 9, config->data.begin() + 18) ==
        wire::Bytes{9, 0x04, 0, 0, 3, 0xfe, 0x03, 0x01, 0});
  CHECK(config->data[18 + 2] == kBulkOut);
  CHECK(config->data[25 + 2] == kBulkIn);
  CHECK(config->data[32 + 2] == kInterruptIn);
  const wire::Bytes caps = class_request(kInterfaceIn, 7, 0, 0, 0x18);  // GET_CAPABILITIES
  CHECK(caps == wire::Bytes{kSuccess, 0,    0x00, 0x01, 0x04, 0x01, 0, 0, 0, 0, 0, 0,
                            0x00,     0x01, 0x06, 0x0e, 0,    0,    0, 0, 0, 0, 0, 0});
  CHECK(class_request(kInterfaceIn, 64, 0, 0, 1) == wire::Bytes{kSuccess});   // INDICATOR_PULSE
  CHECK(class_request(kInterfaceIn, 160, 1, 0, 1) == wire::Bytes{kSuccess});  // REN_CONTROL
}

TEST_CASE_METHOD(Fixture, "usbtmc: *IDN?, settings and measurements as SCPI messages") {
  CHECK(query("*IDN?\n") == "usbnet,USBTMC Simulated Supply,TMC0001,1.0\n");
  CHECK(query("MEAS:VOLT:DC?") == "+0.000000E+00\n");  // the output is off after power on
  write("VOLT 2.5;:OUTPut:STATe ON");
  CHECK(query("measure:voltage:dc?;:MEAS:CURR?") == "+2.500000E+00;+2.500000E-03\n");
  CHECK(query("SOUR:VOLT?;:OUTP?") == "+2.500000E+00;1\n");
  write("*RST");
  CHECK(query("VOLT?;:OUTP?") == "+1.000000E+00;0\n");
  CHECK(query("*OPC?") == "1\n");
  CHECK(query("SYST:ERR?") == "0,\"No error\"\n");
  // A unit without ':' continues from the previous one's path (SYSTem: here).
  CHECK(query("SYST:ERR?;ERR:COUN?;:SYST:VERS?") == "0,\"No error\";0;1999.0\n");
  // SYSTem:ERRor:VERSion does not exist: the responses before the error still come.
  CHECK(query("SYST:ERR:COUN?;VERS?;*OPC?") == "0\n");
  CHECK(query("SYST:ERR?") == "-113,\"Undefined header\"\n");
  CHECK(query("*ESR?") == "160\n");  // PON, once, and CME
  CHECK(query("*ESR?") == "0\n");
}

TEST_CASE_METHOD(Fixture, "usbtmc: TransferSize splits a response, TermChar ends a transfer") {
  write("*IDN?");
  const Response first = read(10);
  CHECK(first.data == "usbnet,USB");
  CHECK(first.attributes == 0x00);  // no EOM: more to come
  const Response rest = read(1000);
  CHECK(rest.data == "TMC Simulated Supply,TMC0001,1.0\n");
  CHECK(rest.attributes == 0x01);
  write("*IDN?");
  const Response to_comma = read(1000, ',');
  CHECK(to_comma.data == "usbnet,");
  CHECK(to_comma.attributes == 0x02);  // ended at the TermChar, not the end of the message
  CHECK(read(1000, ',').data == "USBTMC Simulated Supply,");
}

TEST_CASE_METHOD(Fixture, "usbtmc: a message in several transfers and transactions") {
  // A message without EOM waits for the rest.
  REQUIRE(out(message_out(next_tag(), "*ID", false)) == UrbStatus::Completed);
  REQUIRE(out(message_out(next_tag(), "N?")) == UrbStatus::Completed);
  CHECK(read().data == "usbnet,USBTMC Simulated Supply,TMC0001,1.0\n");
  // One transaction whose data comes in a second bulk transfer.
  wire::Bytes whole = message_out(next_tag(), "*OPC?");
  REQUIRE(out(wire::Bytes(whole.begin(), whole.begin() + 14)) == UrbStatus::Completed);
  REQUIRE(out(wire::Bytes(whole.begin() + 14, whole.end())) == UrbStatus::Completed);
  CHECK(read().data == "1\n");
}

TEST_CASE_METHOD(Fixture, "usbtmc: bad commands fill the error queue, *ESR? and *STB? show it") {
  write("FOO:BAR 3");
  write("VOLT 99");                  // -222, out of range
  write("OUTP MAYBE");               // -224
  write("*IDN? 1");                  // -108
  write("VOLT");                     // -109
  CHECK(query("*STB?") == "4\n");    // EAV: the error queue is not empty
  CHECK(query("*ESR?") == "176\n");  // PON, CME and EXE
  CHECK(query("SYST:ERR:COUN?") == "5\n");
  CHECK(query("SYST:ERR?") == "-113,\"Undefined header\"\n");
  CHECK(query("SYSTem:ERRor:NEXT?") == "-222,\"Data out of range\"\n");
  CHECK(query("SYST:ERR?") == "-224,\"Illegal parameter value\"\n");
  CHECK(query("SYST:ERR?") == "-108,\"Parameter not allowed\"\n");
  CHECK(query("SYST:ERR?") == "-109,\"Missing parameter\"\n");
  CHECK(query("SYST:ERR?") == "0,\"No error\"\n");
  // The queue holds 16; the 16th entry becomes -350 when more come.
  for (int i = 0; i < 20; ++i) write("NOPE");
  CHECK(query("SYST:ERR:COUN?") == "16\n");
  for (int i = 0; i < 15; ++i) CHECK(query("SYST:ERR?") == "-113,\"Undefined header\"\n");
  CHECK(query("SYST:ERR?") == "-350,\"Queue overflow\"\n");
  write("*CLS");
  CHECK(query("*STB?;*ESR?") == "0;0\n");
}

TEST_CASE_METHOD(Fixture, "usbtmc: a read with nothing asked, an unread response, too much data") {
  SECTION("-420: the request waits, INITIATE_ABORT_BULK_IN ends it with a short packet") {
    const std::uint8_t t = next_tag();
    REQUIRE(out(request_in(t, 1024)) == UrbStatus::Completed);
    auto idle = run_urb(client, transfer(UrbType::Bulk, h, kBulkIn, 2048, 200));
    REQUIRE(idle);
    CHECK(idle->status == UrbStatus::TimedOut);
    CHECK(class_request(kEndpointIn, 3, static_cast<std::uint8_t>(t + 1), kBulkIn, 2) ==
          wire::Bytes{0x81, t});  // TRANSFER_NOT_IN_PROGRESS: another bTag
    CHECK(class_request(kEndpointIn, 3, t, kBulkIn, 2) == wire::Bytes{kSuccess, t});
    CHECK(class_request(kEndpointIn, 4, 0, kBulkIn, 8) ==
          wire::Bytes{0x02, 1, 0, 0, 0, 0, 0, 0});  // PENDING until the host reads
    auto ended = run_urb(client, transfer(UrbType::Bulk, h, kBulkIn, 2048));
    REQUIRE(ended);
    CHECK(ended->status == UrbStatus::Completed);
    CHECK(ended->actual_length == 0);
    CHECK(class_request(kEndpointIn, 4, 0, kBulkIn, 8) ==
          wire::Bytes{kSuccess, 0, 0, 0, 0, 0, 0, 0});
    CHECK(class_request(kEndpointIn, 3, t, kBulkIn, 2) == wire::Bytes{kFailed, 0});  // none now
    CHECK(query("SYST:ERR?") == "-420,\"Query UNTERMINATED\"\n");
  }
  SECTION("-410: a new message before the response was read") {
    write("*IDN?");
    write("*OPC?");
    CHECK(read().data == "1\n");
    CHECK(query("SYST:ERR?") == "-410,\"Query INTERRUPTED\"\n");
  }
  SECTION("-223: a message longer than the input buffer is dropped") {
    write("*OPC?;" + std::string(70 * 1024, ' ') + ";*IDN?");
    CHECK(query("SYST:ERR?") == "-223,\"Too much data\"\n");
  }
}

TEST_CASE_METHOD(Fixture,
                 "usbtmc: a bad header halts Bulk-OUT until INITIATE_CLEAR and CLEAR_HALT") {
  wire::Bytes bad = message_out(next_tag(), "*IDN?");
  SECTION("bTagInverse wrong") { bad[2] ^= 0xff; }
  SECTION("bTag 0") { bad[1] = 0, bad[2] = 0xff; }
  SECTION("an unknown MsgID") { bad[0] = 0x33; }
  SECTION("TRIGGER, which the capabilities do not offer") { bad[0] = 128; }
  SECTION("shorter than a header") { bad.resize(8); }
  CHECK(out(bad) == UrbStatus::Stall);
  auto halted = run_urb(client, control(h, 0x82, 0x00, 0, kBulkOut, 2));  // GET_STATUS(endpoint)
  REQUIRE(halted);
  CHECK(halted->data == wire::Bytes{1, 0});
  CHECK(out(message_out(next_tag(), "*IDN?")) == UrbStatus::Stall);            // halted
  CHECK(class_request(kInterfaceIn, 5, 0, 0, 1) == wire::Bytes{kSuccess});     // INITIATE_CLEAR
  CHECK(class_request(kInterfaceIn, 6, 0, 0, 2) == wire::Bytes{kSuccess, 0});  // CHECK_CLEAR
  REQUIRE(client.request(wire::ClearHalt{0, h, kBulkOut}));
  CHECK(query("*IDN?") == "usbnet,USBTMC Simulated Supply,TMC0001,1.0\n");
}

TEST_CASE_METHOD(Fixture, "usbtmc: INITIATE_ABORT_BULK_OUT drops a transfer in progress") {
  CHECK(class_request(kEndpointIn, 1, 1, kBulkOut, 2) == wire::Bytes{kFailed, 0});  // none
  // A transaction announcing 40 bytes, of which only the first 8 have come.
  wire::Bytes partial = message_out(next_tag(), std::string(40, 'x'));
  partial.resize(12 + 8);
  REQUIRE(out(partial) == UrbStatus::Completed);
  CHECK(class_request(kEndpointIn, 1, tag, kBulkOut, 2) == wire::Bytes{kSuccess, tag});
  CHECK(class_request(kEndpointIn, 2, 0, kBulkOut, 8) ==
        wire::Bytes{kSuccess, 0, 0, 0, 8, 0, 0, 0});  // NBYTES_RXD
  REQUIRE(client.request(wire::ClearHalt{0, h, kBulkOut}));
  CHECK(query("*OPC?") == "1\n");
  CHECK(query("SYST:ERR?") == "0,\"No error\"\n");
}

TEST_CASE_METHOD(Fixture,
                 "usbtmc: the status byte on the interrupt endpoint, and service requests") {
  CHECK(class_request(kInterfaceIn, 128, 2, 0, 3) == wire::Bytes{kSuccess, 2, 0});
  auto notification = run_urb(client, transfer(UrbType::Interrupt, h, kInterruptIn, 8));
  REQUIRE(notification);
  CHECK(notification->data == wire::Bytes{0x82, 0x00});
  CHECK(class_request(kInterfaceIn, 128, 1, 0, 3) == wire::Bytes{kFailed, 1, 0});  // bTag < 2
  // *SRE 16: a message available (MAV) asks for service, once.
  write("*SRE 16");
  write("*IDN?");
  auto srq = run_urb(client, transfer(UrbType::Interrupt, h, kInterruptIn, 8));
  REQUIRE(srq);
  CHECK(srq->data == wire::Bytes{0x81, 0x50});  // MSS and MAV
  CHECK(read().data == "usbnet,USBTMC Simulated Supply,TMC0001,1.0\n");
  CHECK(class_request(kInterfaceIn, 128, 3, 0, 3) == wire::Bytes{kSuccess, 3, 0});
  auto after = run_urb(client, transfer(UrbType::Interrupt, h, kInterruptIn, 8));
  REQUIRE(after);
  CHECK(after->data == wire::Bytes{0x83, 0x00});
}
