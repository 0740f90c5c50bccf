#include "agent/sim/descriptor_builder.h"

#include <set>

namespace usbnet::agent::sim {

namespace {

void put16(Bytes& b, std::uint16_t v) {
  b.push_back(static_cast<std::uint8_t>(v));
  b.push_back(static_cast<std::uint8_t>(v >> 8));
}

}  // namespace

Bytes device_descriptor(const DeviceSpec& s, std::uint8_t num_configs) {
  Bytes b{18, 0x01};
  put16(b, s.bcd_usb);
  b.insert(b.end(), {s.device_class, 0, 0, s.max_packet_size0});
  put16(b, s.vendor);
  put16(b, s.product);
  put16(b, s.bcd_device);
  b.insert(b.end(), {s.manufacturer_index, s.product_index, s.serial_index, num_configs});
  return b;
}

Bytes config_descriptor(const ConfigSpec& s) {
  std::set<std::uint8_t> interfaces;
  for (const auto& alt : s.alt_settings) interfaces.insert(alt.interface_number);
  Bytes b{9,
          0x02,
          0,
          0,
          static_cast<std::uint8_t>(interfaces.size()),
          s.value,
          s.string_index,
          s.attributes,
          s.max_power};
  for (const auto& alt : s.alt_settings) {
    b.insert(b.end(), {9, 0x04, alt.interface_number, alt.alternate,
                       static_cast<std::uint8_t>(alt.endpoints.size()), alt.interface_class,
                       alt.subclass, alt.protocol, alt.string_index});
    b.insert(b.end(), alt.class_descriptors.begin(), alt.class_descriptors.end());
    for (const auto& ep : alt.endpoints) {
      b.insert(b.end(), {7, 0x05, ep.address, ep.attributes});
      put16(b, ep.max_packet_size);
      b.push_back(ep.interval);
      b.insert(b.end(), ep.companion.begin(), ep.companion.end());
    }
  }
  const auto total = static_cast<std::uint16_t>(b.size());
  b[2] = static_cast<std::uint8_t>(total);
  b[3] = static_cast<std::uint8_t>(total >> 8);
  return b;
}

Bytes string_descriptor(const std::string& text) {
  Bytes b{static_cast<std::uint8_t>(2 + 2 * text.size()), 0x03};
  for (char c : text) put16(b, static_cast<std::uint8_t>(c));
  return b;
}

Bytes language_table(std::uint16_t langid) {
  Bytes b{4, 0x03};
  put16(b, langid);
  return b;
}

Bytes bos_descriptor(const std::vector<Bytes>& capabilities) {
  Bytes b{5, 0x0f, 0, 0, static_cast<std::uint8_t>(capabilities.size())};
  for (const Bytes& cap : capabilities) b.insert(b.end(), cap.begin(), cap.end());
  b[2] = static_cast<std::uint8_t>(b.size());
  b[3] = static_cast<std::uint8_t>(b.size() >> 8);
  return b;
}

Bytes usb2_extension_capability(std::uint32_t attributes) {
  Bytes b{7, 0x10, 0x02};
  for (int i = 0; i < 4; ++i) b.push_back(static_cast<std::uint8_t>(attributes >> (8 * i)));
  return b;
}

Bytes superspeed_capability(std::uint8_t attributes, std::uint16_t speeds,
                            std::uint8_t functionality, std::uint8_t u1_exit,
                            std::uint16_t u2_exit) {
  Bytes b{10, 0x10, 0x03, attributes};
  put16(b, speeds);
  b.push_back(functionality);
  b.push_back(u1_exit);
  put16(b, u2_exit);
  return b;
}

Bytes container_id_capability(const std::array<std::uint8_t, 16>& uuid) {
  Bytes b{20, 0x10, 0x04, 0x00};
  b.insert(b.end(), uuid.begin(), uuid.end());
  return b;
}

Bytes ss_endpoint_companion(std::uint8_t max_burst, std::uint8_t attributes,
                            std::uint16_t bytes_per_interval) {
  Bytes b{6, 0x30, max_burst, attributes};
  put16(b, bytes_per_interval);
  return b;
}

}  // namespace usbnet::agent::sim
