// The usbmon records of capture/usbmon.h, byte for byte: the pcap file header, a control IN
// with its setup packet and answer, a bulk OUT, an isochronous IN with its descriptors and
// collated data, a submission error, a record cut at the snapshot length; and the file sink.
#include <unistd.h>
#include <catch2/catch.hpp>

#include <cstdio>
#include <fstream>
#include <iterator>

#include "capture/pcap_file.h"
#include "capture/usbmon.h"
#include "hex.h"

using namespace usbnet;
using capture::Urb;
using wire::test::from_hex;
using wire::test::to_hex;

namespace {

constexpr capture::Timestamp kTime{0x65000000, 123456};

std::string hex_of(const wire::Bytes& b) { return to_hex(b); }
std::string hex(std::string_view text) { return to_hex(from_hex(text)); }

Urb control_in() {
  Urb u;
  u.id = 0x1122334455667788;
  u.bus = 201;
  u.address = 2;
  u.type = wire::UrbType::Control;
  u.setup = {0x80, 0x06, 0x00, 0x01, 0x00, 0x00, 0x12, 0x00};
  u.length = 18;
  return u;
}

}  // namespace

TEST_CASE("usbmon: the pcap file header says little-endian, microseconds, link type 220") {
  const auto h = capture::pcap_file_header();
  CHECK(to_hex(h) == hex("d4c3b2a1 0200 0400 00000000 00000000 00000400 dc000000"));
}

TEST_CASE("usbmon: GET_DESCRIPTOR(DEVICE), the submission with its setup packet") {
  wire::Bytes out;
  capture::append_submission(out, control_in(), {}, kTime);
  CHECK(hex_of(out) == hex(
                           // pcap record: ts, captured 64, original 64 + 18
                           "00000065 40e20100 40000000 52000000"
                           // id, 'S', control, IN endpoint 0, device 2, bus 201
                           "8877665544332211 53 02 80 02 c900"
                           // setup present, data to come ('<'), ts, -EINPROGRESS
                           "00 3c 0000006500000000 40e20100 8dffffff"
                           // length 18, captured 0, the setup packet
                           "12000000 00000000 8006000100001200"
                           // interval, start frame, URB_DIR_IN, no iso descriptors
                           "00000000 00000000 00020000 00000000"));
}

TEST_CASE("usbmon: GET_DESCRIPTOR(DEVICE), the completion with the descriptor") {
  const wire::Bytes descriptor = from_hex("120100020000004009120100000101020301");
  wire::Bytes out;
  capture::append_completion(out, control_in(), {wire::UrbStatus::Completed, 18, {}}, descriptor,
                             kTime);
  CHECK(hex_of(out) == hex("00000065 40e20100 52000000 52000000"
                           "8877665544332211 43 02 80 02 c900"
                           "2d 00 0000006500000000 40e20100 00000000"
                           "12000000 12000000 0000000000000000"
                           "00000000 00000000 00020000 00000000"
                           "120100020000004009120100000101020301"));
}

TEST_CASE("usbmon: a bulk OUT carries its data at submission, none at completion") {
  Urb u;
  u.id = 1;
  u.bus = 1;
  u.address = 3;
  u.type = wire::UrbType::Bulk;
  u.endpoint = 0x01;
  u.flags = wire::kFlagAddZeroPacket;
  u.length = 4;
  const wire::Bytes data = from_hex("64617461");
  wire::Bytes out;
  capture::append_submission(out, u, data, kTime);
  CHECK(hex_of(out) == hex("00000065 40e20100 44000000 44000000"
                           "0100000000000000 53 03 01 03 0100"
                           "2d 00 0000006500000000 40e20100 8dffffff"
                           "04000000 04000000 0000000000000000"
                           // URB_ZERO_PACKET
                           "00000000 00000000 40000000 00000000"
                           "64617461"));
  out.clear();
  capture::append_completion(out, u, {wire::UrbStatus::Stall, 0, {}}, {}, kTime);
  CHECK(hex_of(out) == hex("00000065 40e20100 40000000 40000000"
                           "0100000000000000 43 03 01 03 0100"
                           // the data went with the submission ('>'), -EPIPE
                           "2d 3e 0000006500000000 40e20100 e0ffffff"
                           "00000000 00000000 0000000000000000"
                           "00000000 00000000 40000000 00000000"));
}

TEST_CASE("usbmon: an isochronous IN, its descriptors and its data at the packets' offsets") {
  Urb u;
  u.id = 2;
  u.bus = 100;
  u.address = 4;
  u.type = wire::UrbType::Iso;
  u.endpoint = 0x81;
  u.length = 16;
  u.interval = 1;
  u.iso_lengths = {8, 8};
  wire::Bytes out;
  capture::append_submission(out, u, {}, kTime);
  CHECK(hex_of(out) == hex("00000065 40e20100 60000000 70000000"
                           "0200000000000000 53 00 81 04 6400"
                           "2d 3c 0000006500000000 40e20100 8dffffff"
                           // length 16, captured: the two descriptors; error_count, numdesc
                           "10000000 20000000 00000000 02000000"
                           // interval 1, URB_DIR_IN | URB_ISO_ASAP, 2 descriptors
                           "01000000 00000000 02020000 02000000"
                           // -EXDEV (not done yet), offset, length, padding
                           "eeffffff 00000000 08000000 00000000"
                           "eeffffff 08000000 08000000 00000000"));
  out.clear();
  const wire::IsoPacketResult results[] = {{wire::UrbStatus::Completed, 4},
                                           {wire::UrbStatus::Error, 0}};
  wire::Bytes buffer(16, 0xee);
  buffer[0] = 0;
  buffer[1] = 1;
  buffer[2] = 2;
  buffer[3] = 3;
  capture::append_completion(out, u, {wire::UrbStatus::Completed, 0, results}, buffer, kTime);
  CHECK(hex_of(out) == hex("00000065 40e20100 64000000 64000000"
                           "0200000000000000 43 00 81 04 6400"
                           "2d 00 0000006500000000 40e20100 00000000"
                           // actual 4; captured: descriptors and data up to the end of packet 0
                           "04000000 24000000 01000000 02000000"
                           "01000000 00000000 02020000 02000000"
                           "00000000 00000000 04000000 00000000"
                           // packet 1: -EPROTO
                           "b9ffffff 08000000 00000000 00000000"
                           "00010203"));
}

TEST_CASE("usbmon: a submission that never reached the device is an 'E' record") {
  Urb u = control_in();
  u.id = 7;
  u.bus = 1;
  wire::Bytes out;
  capture::append_submission_error(out, u, -19, kTime);
  CHECK(hex_of(out) == hex("00000065 40e20100 40000000 40000000"
                           "0700000000000000 45 02 80 02 0100"
                           "2d 45 0000006500000000 40e20100 edffffff"
                           "00000000 00000000 0000000000000000"
                           "00000000 00000000 00000000 00000000"));
}

TEST_CASE("usbmon: data past the snapshot length is cut, the original length kept") {
  Urb u;
  u.type = wire::UrbType::Bulk;
  u.endpoint = 0x82;
  u.length = 300000;
  const wire::Bytes data(300000, 0x5a);
  wire::Bytes out;
  capture::append_completion(out, u, {wire::UrbStatus::Completed, 300000, {}}, data, kTime);
  REQUIRE(out.size() == capture::kPcapRecordHeaderLength + capture::kSnapLength);
  CHECK(to_hex(wire::ByteView(out).subspan(8, 8)) == hex("00000400 20940400"));  // 262144, 300064
  CHECK(to_hex(wire::ByteView(out).subspan(16 + 32, 8)) == hex("e0930400 c0ff0300"));
}

TEST_CASE("usbmon: the interval as usbfs sets it, from the endpoint's bInterval") {
  wire::DeviceInfo d;
  d.active_config = 1;
  d.configs.push_back(
      from_hex("09022200010100a032 090400000103010200 092111010001223400"
               "07058103080004"));
  d.speed = 2;  // full speed: frames
  CHECK(capture::interval(d, 0x81, wire::UrbType::Interrupt) == 4);
  d.speed = 3;  // high speed: 2^(bInterval-1) microframes
  CHECK(capture::interval(d, 0x81, wire::UrbType::Interrupt) == 8);
  CHECK(capture::interval(d, 0x81, wire::UrbType::Bulk) == 0);
  CHECK(capture::interval(d, 0x82, wire::UrbType::Interrupt) == 0);
}

TEST_CASE("usbmon: a device's enumeration: GET_DESCRIPTOR of the device and each configuration") {
  wire::DeviceInfo d;
  d.device_address = 5;
  d.device_descriptor = {0x12, 0x01, 0x00, 0x02, 0,    0, 0, 0x40, 0x09,
                         0x12, 0x01, 0x00, 0x00, 0x01, 1, 2, 3,    1};
  d.configs.push_back(from_hex("0902120001010080fa 090400000000000000"));
  wire::Bytes out;
  capture::append_enumeration(out, d, 201, 40, kTime);
  // Four records: 'S' and 'C' of the device descriptor, then of the configuration.
  const std::size_t s = 16 + 64, c_device = 16 + 64 + 18, c_config = 16 + 64 + 18;
  REQUIRE(out.size() == 2 * s + c_device + c_config);
  CHECK(to_hex(wire::ByteView(out).subspan(16, 9)) == hex("2800000000000000 53"));
  CHECK(to_hex(wire::ByteView(out).subspan(16 + 40, 8)) == hex("8006000100001200"));
  const std::size_t config_s = s + c_device;
  CHECK(to_hex(wire::ByteView(out).subspan(config_s + 16, 9)) == hex("2900000000000000 53"));
  CHECK(to_hex(wire::ByteView(out).subspan(config_s + 16 + 40, 8)) == hex("8006000200001200"));
  CHECK(to_hex(wire::ByteView(out).subspan(out.size() - 18)) ==
        hex("0902120001010080fa 090400000000000000"));
}

namespace {

struct TempFile {
  std::string path = "/tmp/usbnet-usbmon-test-" + std::to_string(::getpid()) + ".pcap";
  ~TempFile() { std::remove(path.c_str()); }
  wire::Bytes contents() const {
    std::ifstream in(path, std::ios::binary);
    return wire::Bytes(std::istreambuf_iterator<char>(in), {});
  }
};

}  // namespace

TEST_CASE("pcap file: the header once, whole records appended, a capture continued") {
  TempFile f;
  wire::Bytes record;
  capture::append_submission(record, control_in(), {}, kTime);
  {
    auto file = capture::PcapFile::open(f.path, 1 << 20, "test");
    REQUIRE(file);
    CHECK((*file)->write(record));
  }
  {
    auto file = capture::PcapFile::open(f.path, 1 << 20, "test");
    REQUIRE(file);
    CHECK((*file)->write(record));
  }
  const auto header = capture::pcap_file_header();
  wire::Bytes expected(header.begin(), header.end());
  expected.insert(expected.end(), record.begin(), record.end());
  expected.insert(expected.end(), record.begin(), record.end());
  CHECK(f.contents() == expected);
}

TEST_CASE("pcap file: a file that is not such a capture is left alone") {
  TempFile f;
  std::ofstream(f.path) << "not a capture";
  auto file = capture::PcapFile::open(f.path, 1 << 20, "USBNET_PCAP");
  REQUIRE_FALSE(file);
  CHECK(file.error() == "USBNET_PCAP: '" + f.path +
                            "' exists and is not a usbmon capture of usbnet's; not capturing");
  CHECK(f.contents() == from_hex("6e6f7420612063617074757265"));
}

TEST_CASE("pcap file: capturing stops before the file passes its limit") {
  TempFile f;
  wire::Bytes record;
  capture::append_submission(record, control_in(), {}, kTime);  // 80 bytes
  auto file = capture::PcapFile::open(f.path, 4096, "test");
  REQUIRE(file);
  int written = 0;
  while ((*file)->write(record)) ++written;
  CHECK(written == (4096 - 24) / 80);
  CHECK_FALSE((*file)->active());
  CHECK(f.contents().size() == 24 + static_cast<std::size_t>(written) * 80);
}

TEST_CASE(
    "pcap file: a record cut short by a killed writer is removed before the capture goes on") {
  TempFile f;
  wire::Bytes record;
  capture::append_submission(record, control_in(), {}, kTime);
  {
    auto file = capture::PcapFile::open(f.path, 1 << 20, "test");
    REQUIRE(file);
    REQUIRE((*file)->write(record));
  }
  // The writer was killed in the middle of its second record.
  {
    std::ofstream out(f.path, std::ios::binary | std::ios::app);
    out.write(reinterpret_cast<const char*>(record.data()), 50);
  }
  auto file = capture::PcapFile::open(f.path, 1 << 20, "test");
  REQUIRE(file);
  REQUIRE((*file)->write(record));
  const auto header = capture::pcap_file_header();
  wire::Bytes expected(header.begin(), header.end());
  expected.insert(expected.end(), record.begin(), record.end());
  expected.insert(expected.end(), record.begin(), record.end());
  CHECK(f.contents() == expected);
}
