// Raw USB descriptors built from a description, so that lengths and counts (bLength,
// wTotalLength, bNumInterfaces, bNumEndpoints) are computed, never counted by hand.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace usbnet::agent::sim {

using Bytes = std::vector<std::uint8_t>;

struct EndpointSpec {
  std::uint8_t address;
  std::uint8_t attributes;  // transfer type (and iso sync type)
  std::uint16_t max_packet_size;
  std::uint8_t interval;
  Bytes companion;  // SuperSpeed endpoint companion descriptor, if any (raw)
};

struct AltSettingSpec {
  std::uint8_t interface_number;
  std::uint8_t alternate;
  std::uint8_t interface_class;
  std::uint8_t subclass;
  std::uint8_t protocol;
  std::uint8_t string_index;
  Bytes class_descriptors;  // after the interface descriptor (a HID descriptor, say)
  std::vector<EndpointSpec> endpoints;
};

struct ConfigSpec {
  std::uint8_t value;
  std::uint8_t string_index;
  std::uint8_t attributes;  // 0x80 | self powered 0x40 | remote wakeup 0x20
  std::uint8_t max_power;   // in the speed's units (2 mA, or 8 mA at SuperSpeed)
  std::vector<AltSettingSpec> alt_settings;
};

struct DeviceSpec {
  std::uint16_t bcd_usb;
  std::uint8_t device_class;
  std::uint8_t max_packet_size0;
  std::uint16_t vendor;
  std::uint16_t product;
  std::uint16_t bcd_device;
  std::uint8_t manufacturer_index;
  std::uint8_t product_index;
  std::uint8_t serial_index;
};

Bytes device_descriptor(const DeviceSpec& spec, std::uint8_t num_configs);
Bytes config_descriptor(const ConfigSpec& spec);
// String descriptor for a UTF-8 (ASCII) text, and string 0 (the table of language ids).
Bytes string_descriptor(const std::string& text);
Bytes language_table(std::uint16_t langid);
// BOS descriptor around the given raw device capability descriptors.
Bytes bos_descriptor(const std::vector<Bytes>& capabilities);
Bytes usb2_extension_capability(std::uint32_t attributes);
Bytes superspeed_capability(std::uint8_t attributes, std::uint16_t speeds,
                            std::uint8_t functionality, std::uint8_t u1_exit,
                            std::uint16_t u2_exit);
Bytes container_id_capability(const std::array<std::uint8_t, 16>& uuid);
Bytes ss_endpoint_companion(std::uint8_t max_burst, std::uint8_t attributes,
                            std::uint16_t bytes_per_interval);

}  // namespace usbnet::agent::sim
