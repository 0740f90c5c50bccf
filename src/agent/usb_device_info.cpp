#include "agent/usb_device_info.h"

#include <fstream>
#include <iterator>
#include <memory>
#include <string>

#include "common/log.h"

namespace usbnet::agent {

namespace {

constexpr unsigned kControlTimeoutMs = 1000;

std::uint16_t u16_at(const wire::Bytes& b, std::size_t at) {
  return static_cast<std::uint16_t>(b[at] | (b[at + 1] << 8));
}

// "/sys/bus/usb/devices/1-2.3": the kernel's name for the device, from its bus and port path
// ("usb1" for bus 1's root hub).
std::string sysfs_path(const wire::DeviceInfo& info) {
  if (info.port_numbers.empty()) {
    return "/sys/bus/usb/devices/usb" + std::to_string(info.bus_number);
  }
  std::string name = std::to_string(info.bus_number) + "-";
  for (std::size_t i = 0; i < info.port_numbers.size(); ++i) {
    if (i > 0) name += '.';
    name += std::to_string(info.port_numbers[i]);
  }
  return "/sys/bus/usb/devices/" + name;
}

wire::Bytes read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return {};
  return wire::Bytes(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// Where the configuration starting at `at` ends, as libusb's Linux backend splits sysfs data:
// the kernel keeps only descriptors with a sane bLength, so a configuration runs to the next
// configuration descriptor (the last one to the end), whatever its wTotalLength says.
std::size_t sysfs_config_end(const wire::Bytes& raw, std::size_t at, bool last) {
  if (last) return raw.size();
  std::size_t p = at + 9;
  while (p + 2 <= raw.size()) {
    if (raw[p + 1] == LIBUSB_DT_CONFIG) return p;
    if (raw[p] == 0) break;
    p += raw[p];
  }
  return raw.size();
}

// The device descriptor and every configuration descriptor, raw, from sysfs "descriptors".
bool read_sysfs_descriptors(wire::DeviceInfo& info) {
  const wire::Bytes raw = read_file(sysfs_path(info) + "/descriptors");
  if (raw.size() < wire::kDeviceDescriptorLength) return false;
  std::copy_n(raw.begin(), wire::kDeviceDescriptorLength, info.device_descriptor.begin());
  const unsigned count = info.device_descriptor[17];
  std::size_t at = wire::kDeviceDescriptorLength;
  for (unsigned i = 0; i < count && at + 9 <= raw.size(); ++i) {
    const std::size_t end = sysfs_config_end(raw, at, i + 1 == count);
    info.configs.emplace_back(raw.begin() + static_cast<std::ptrdiff_t>(at),
                              raw.begin() + static_cast<std::ptrdiff_t>(end));
    at = end;
  }
  const wire::Bytes value = read_file(sysfs_path(info) + "/bConfigurationValue");
  info.active_config =
      value.empty()
          ? 0
          : static_cast<std::uint8_t>(std::atoi(reinterpret_cast<const char*>(value.data())));
  return true;
}

struct HandleCloser {
  void operator()(libusb_device_handle* h) const { libusb_close(h); }
};
using UniqueHandle = std::unique_ptr<libusb_device_handle, HandleCloser>;

std::optional<wire::Bytes> get_descriptor(libusb_device_handle* h, std::uint8_t type,
                                          std::uint8_t index, std::uint16_t langid,
                                          std::uint16_t length) {
  wire::Bytes buffer(length);
  const int n = libusb_control_transfer(h, LIBUSB_ENDPOINT_IN, LIBUSB_REQUEST_GET_DESCRIPTOR,
                                        static_cast<std::uint16_t>((type << 8) | index), langid,
                                        buffer.data(), length, kControlTimeoutMs);
  if (n < 2) return std::nullopt;
  buffer.resize(static_cast<std::size_t>(n));
  return buffer;
}

// What only the device itself can tell: BOS, strings, and (without sysfs) the configurations.
void read_from_device(libusb_device* device, wire::DeviceInfo& info, bool have_configs) {
  libusb_device_handle* raw_handle = nullptr;
  if (const int r = libusb_open(device, &raw_handle); r != 0) {
    log::info("bus {} address {}: cannot open to read strings ({}); listing it without them",
              info.bus_number, info.device_address, libusb_error_name(r));
    return;
  }
  UniqueHandle h(raw_handle);
  const wire::Bytes device_descriptor(info.device_descriptor.begin(), info.device_descriptor.end());
  if (!have_configs) {
    for (unsigned i = 0; i < info.device_descriptor[17]; ++i) {
      auto head = get_descriptor(h.get(), LIBUSB_DT_CONFIG, static_cast<std::uint8_t>(i), 0, 9);
      if (!head || head->size() < 4) break;
      auto whole = get_descriptor(h.get(), LIBUSB_DT_CONFIG, static_cast<std::uint8_t>(i), 0,
                                  u16_at(*head, 2));
      if (!whole) break;
      info.configs.push_back(std::move(*whole));
    }
    int config = 0;
    if (libusb_get_configuration(h.get(), &config) == 0) {
      info.active_config = static_cast<std::uint8_t>(config);
    }
  }
  if (u16_at(device_descriptor, 2) >= 0x0201) {
    if (auto head = get_descriptor(h.get(), LIBUSB_DT_BOS, 0, 0, 5); head && head->size() >= 4) {
      if (auto bos = get_descriptor(h.get(), LIBUSB_DT_BOS, 0, 0, u16_at(*head, 2))) {
        info.bos = std::move(*bos);
      }
    }
  }
  auto languages = get_descriptor(h.get(), LIBUSB_DT_STRING, 0, 0, 255);
  if (!languages || languages->size() < 4) return;
  const std::uint16_t langid = u16_at(*languages, 2);
  info.strings.push_back({0, 0, std::move(*languages)});
  for (std::size_t field : {14u, 15u, 16u}) {  // iManufacturer, iProduct, iSerialNumber
    const std::uint8_t index = info.device_descriptor[field];
    if (index == 0) continue;
    if (auto s = get_descriptor(h.get(), LIBUSB_DT_STRING, index, langid, 255)) {
      info.strings.push_back({index, langid, std::move(*s)});
    }
  }
}

// Without sysfs: the device descriptor as libusb parsed it, written back in USB's layout.
void device_descriptor_from_libusb(libusb_device* device, wire::DeviceInfo& info) {
  libusb_device_descriptor d{};
  libusb_get_device_descriptor(device, &d);
  auto& b = info.device_descriptor;
  b = {d.bLength,
       d.bDescriptorType,
       static_cast<std::uint8_t>(d.bcdUSB),
       static_cast<std::uint8_t>(d.bcdUSB >> 8),
       d.bDeviceClass,
       d.bDeviceSubClass,
       d.bDeviceProtocol,
       d.bMaxPacketSize0,
       static_cast<std::uint8_t>(d.idVendor),
       static_cast<std::uint8_t>(d.idVendor >> 8),
       static_cast<std::uint8_t>(d.idProduct),
       static_cast<std::uint8_t>(d.idProduct >> 8),
       static_cast<std::uint8_t>(d.bcdDevice),
       static_cast<std::uint8_t>(d.bcdDevice >> 8),
       d.iManufacturer,
       d.iProduct,
       d.iSerialNumber,
       d.bNumConfigurations};
}

}  // namespace

wire::DeviceInfo read_device_info(libusb_device* device) {
  wire::DeviceInfo info;
  info.bus_number = libusb_get_bus_number(device);
  info.device_address = libusb_get_device_address(device);
  const int speed = libusb_get_device_speed(device);
  info.speed = static_cast<std::uint8_t>(speed >= 0 && speed <= wire::kMaxSpeed ? speed : 0);
  std::uint8_t ports[wire::kMaxPortNumbers];
  const int port_count = libusb_get_port_numbers(device, ports, wire::kMaxPortNumbers);
  if (port_count > 0) info.port_numbers.assign(ports, ports + port_count);

  const bool have_configs = read_sysfs_descriptors(info);
  if (!have_configs) device_descriptor_from_libusb(device, info);
  read_from_device(device, info, have_configs);
  return info;
}

}  // namespace usbnet::agent
