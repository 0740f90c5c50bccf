// The shim's descriptor parser: raw descriptors into libusb's structs, with libusb 1.0.26's
// rules for class-specific `extra` bytes, for descriptors that end early, and for those that are
// malformed (an I/O error, nothing leaked: the sanitizer build checks).
#include <catch2/catch.hpp>

#include "interpose/descriptors/descriptors.h"

using namespace usbnet::interpose;
using Bytes = std::vector<std::uint8_t>;

namespace {

Bytes operator+(Bytes a, const Bytes& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

Bytes config(std::uint8_t interfaces, std::uint16_t total = 0) {
  return {9,
          2,
          static_cast<std::uint8_t>(total),
          static_cast<std::uint8_t>(total >> 8),
          interfaces,
          1,
          0,
          0x80,
          50};
}
Bytes interface(std::uint8_t number, std::uint8_t alt, std::uint8_t endpoints) {
  return {9, 4, number, alt, endpoints, 0xff, 0, 0, 0};
}
Bytes endpoint(std::uint8_t address, std::uint8_t attributes, std::uint16_t packet) {
  return {7,
          5,
          address,
          attributes,
          static_cast<std::uint8_t>(packet),
          static_cast<std::uint8_t>(packet >> 8),
          0};
}
const Bytes kHid = {9, 0x21, 0x11, 0x01, 0, 1, 0x22, 0x34, 0};
const Bytes kCompanion = {6, 0x30, 15, 0, 0, 0};
const Bytes kVendor = {4, 0x41, 0xaa, 0xbb};

// Owns a parsed configuration.
struct Parsed {
  libusb_config_descriptor* config = nullptr;
  int error = 0;
  explicit Parsed(const Bytes& raw) {
    auto r = parse_config_descriptor(raw);
    if (r) {
      config = *r;
    } else {
      error = r.error();
    }
  }
  ~Parsed() { free_config_descriptor(config); }
  const libusb_interface_descriptor& alt(int i, int a = 0) const {
    return config->interface[i].altsetting[a];
  }
};

Bytes extra_of(const unsigned char* extra, int length) { return Bytes(extra, extra + length); }

}  // namespace

TEST_CASE("a configuration with alternate settings, class descriptors and companions") {
  const Bytes raw = config(2) + kVendor + interface(0, 0, 1) + kHid + endpoint(0x81, 3, 8) +
                    kCompanion + interface(0, 1, 2) + endpoint(0x82, 2, 1024) +
                    endpoint(0x02, 2, 1024) + interface(1, 0, 0);
  Parsed p(raw);
  REQUIRE(p.config);
  CHECK(p.config->bNumInterfaces == 2);
  CHECK(extra_of(p.config->extra, p.config->extra_length) == kVendor);
  REQUIRE(p.config->interface[0].num_altsetting == 2);
  CHECK(extra_of(p.alt(0).extra, p.alt(0).extra_length) == kHid);
  REQUIRE(p.alt(0).bNumEndpoints == 1);
  CHECK(p.alt(0).endpoint[0].bEndpointAddress == 0x81);
  CHECK(p.alt(0).endpoint[0].wMaxPacketSize == 8);
  CHECK(extra_of(p.alt(0).endpoint[0].extra, p.alt(0).endpoint[0].extra_length) == kCompanion);
  REQUIRE(p.alt(0, 1).bNumEndpoints == 2);
  CHECK(p.alt(0, 1).endpoint[1].bEndpointAddress == 0x02);
  CHECK(p.alt(0, 1).endpoint[1].wMaxPacketSize == 1024);
  CHECK(p.alt(0, 1).endpoint[1].extra_length == 0);
  CHECK(p.config->interface[1].num_altsetting == 1);
  CHECK(p.alt(1).bInterfaceNumber == 1);
  CHECK(p.alt(1).endpoint == nullptr);
}

TEST_CASE("an audio-style endpoint of 9 bytes keeps bRefresh and bSynchAddress") {
  const Bytes audio_endpoint = {9, 5, 0x81, 0x05, 192, 0, 1, 4, 0x83};
  Parsed p(config(1) + interface(0, 0, 1) + audio_endpoint);
  REQUIRE(p.config);
  CHECK(p.alt(0).endpoint[0].bRefresh == 4);
  CHECK(p.alt(0).endpoint[0].bSynchAddress == 0x83);
}

TEST_CASE("descriptors that end early are kept as far as they go, as libusb does") {
  SECTION("fewer interfaces than announced") {
    Parsed p(config(3) + interface(0, 0, 0));
    REQUIRE(p.config);
    CHECK(p.config->bNumInterfaces == 1);
  }
  SECTION("an endpoint cut off in the middle") {
    Bytes raw = config(1) + interface(0, 0, 2) + endpoint(0x81, 2, 512) + endpoint(0x02, 2, 512);
    raw.resize(raw.size() - 3);
    Parsed p(raw);
    REQUIRE(p.config);
    CHECK(p.alt(0).bNumEndpoints == 1);
  }
  SECTION(
      "the only endpoint cut off: no endpoints (where libusb would leave a count of 1 "
      "beside a null array)") {
    Bytes raw = config(1) + interface(0, 0, 1) + endpoint(0x81, 2, 512);
    raw.resize(raw.size() - 3);
    Parsed p(raw);
    REQUIRE(p.config);
    CHECK(p.alt(0).bNumEndpoints == 0);
    CHECK(p.alt(0).endpoint == nullptr);
  }
  SECTION("a class descriptor that runs past the end") {
    Parsed p(config(1) + Bytes{8, 0x24, 1});
    REQUIRE(p.config);
    CHECK(p.config->bNumInterfaces == 0);
    CHECK(p.config->extra_length == 0);
  }
  SECTION("a descriptor of another type where an endpoint belongs") {
    Parsed p(config(1) + interface(0, 0, 2) + endpoint(0x81, 2, 512) + interface(1, 0, 0));
    REQUIRE(p.config);
    CHECK(p.alt(0).bNumEndpoints == 1);
  }
}

TEST_CASE("malformed configurations are an I/O error") {
  CHECK(Parsed(Bytes{9, 2, 0, 0}).error == LIBUSB_ERROR_IO);                     // short
  CHECK(Parsed(Bytes{9, 4, 9, 0, 1, 1, 0, 0x80, 50}).error == LIBUSB_ERROR_IO);  // not a config
  CHECK(Parsed(Bytes{8, 2, 9, 0, 1, 1, 0, 0x80, 50}).error == LIBUSB_ERROR_IO);  // bLength < 9
  CHECK(Parsed(config(33)).error == LIBUSB_ERROR_IO);  // more interfaces than USB allows
  CHECK(Parsed(config(1) + Bytes{1, 0x24}).error == LIBUSB_ERROR_IO);  // bLength below 2
  CHECK(Parsed(config(1) + Bytes{8, 4, 0, 0, 0, 0, 0, 0, 0}).error == LIBUSB_ERROR_IO);
  // Announced endpoints, and no bytes left for the next one.
  CHECK(Parsed(config(1) + interface(0, 0, 3) + endpoint(0x81, 2, 512)).error == LIBUSB_ERROR_IO);
  CHECK(Parsed(config(1) + interface(0, 0, 33)).error == LIBUSB_ERROR_IO);
  CHECK(Parsed(config(1) + interface(0, 0, 1) + Bytes{6, 5, 0x81, 2, 0, 2}).error ==
        LIBUSB_ERROR_IO);
  CHECK(Parsed(config(1) + interface(0, 0, 1) + endpoint(0x81, 2, 64) + Bytes{0, 0x30}).error ==
        LIBUSB_ERROR_IO);
}

TEST_CASE("a BOS descriptor with its capabilities, and malformed ones") {
  const Bytes usb2 = {7, 0x10, 2, 2, 0, 0, 0};
  const Bytes superspeed = {10, 0x10, 3, 0, 0x0e, 0, 1, 10, 0xff, 0x07};
  const Bytes bos = Bytes{5, 0x0f, 22, 0, 2} + usb2 + superspeed;
  auto parsed = parse_bos_descriptor(bos);
  REQUIRE(parsed);
  CHECK((*parsed)->bNumDeviceCaps == 2);
  CHECK((*parsed)->dev_capability[1]->bDevCapabilityType == 3);
  CHECK((*parsed)->dev_capability[1]->bLength == 10);
  free_bos_descriptor(*parsed);

  auto truncated = parse_bos_descriptor(Bytes{5, 0x0f, 22, 0, 2} + usb2);
  REQUIRE(truncated);
  CHECK((*truncated)->bNumDeviceCaps == 1);
  free_bos_descriptor(*truncated);

  CHECK(parse_bos_descriptor(Bytes{5, 0x0f, 5}).error() == LIBUSB_ERROR_IO);
  CHECK(parse_bos_descriptor(Bytes{5, 0x02, 5, 0, 0}).error() == LIBUSB_ERROR_IO);
  CHECK(parse_bos_descriptor(Bytes{5, 0x0f, 8, 0, 1, 2, 0x10, 2}).error() == LIBUSB_ERROR_IO);
}
