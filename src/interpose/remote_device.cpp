#include "interpose/remote_device.h"

#include <algorithm>
#include <memory>

#include "common/topology.h"
#include "interpose/agent_link.h"
#include "interpose/context.h"
#include "interpose/descriptors/descriptors.h"
#include "interpose/objects.h"

namespace usbnet::interpose {

namespace {

// Parses one of a remote device's raw configuration descriptors for the program. Like libusb on
// Linux: by index and for the active configuration, the first min(wTotalLength, cached length)
// bytes are parsed; by value, the whole cached length.
enum class Length { UpToTotal, Whole };
int parse_config_for_program(const wire::Bytes& raw, Length length,
                             libusb_config_descriptor** config) {
  if (raw.size() < LIBUSB_DT_CONFIG_SIZE) return LIBUSB_ERROR_IO;
  std::size_t n = raw.size();
  if (length == Length::UpToTotal) n = std::min<std::size_t>(n, raw[2] | (raw[3] << 8));
  auto parsed = parse_config_descriptor(RawDescriptor(raw.data(), n));
  if (!parsed) return parsed.error();
  allocations().add(*parsed);
  *config = *parsed;
  return LIBUSB_SUCCESS;
}

const libusb_endpoint_descriptor* find_endpoint(const libusb_config_descriptor* config,
                                                unsigned char address) {
  for (int i = 0; i < config->bNumInterfaces; ++i) {
    const libusb_interface& iface = config->interface[i];
    for (int a = 0; a < iface.num_altsetting; ++a) {
      const libusb_interface_descriptor& alt = iface.altsetting[a];
      for (int e = 0; e < alt.bNumEndpoints; ++e) {
        if (alt.endpoint[e].bEndpointAddress == address) return &alt.endpoint[e];
      }
    }
  }
  return nullptr;
}

}  // namespace

void RemoteDevice::ConfigFreer::operator()(libusb_config_descriptor* config) const {
  free_config_descriptor(config);
}

RemoteDevice::RemoteDevice(Context& context, std::shared_ptr<AgentLink> link, wire::DeviceInfo info,
                           std::uint8_t bus_number)
    : context_(context),
      link_(std::move(link)),
      info_(std::move(info)),
      bus_number_(bus_number),
      active_config_(info_.active_config) {
  remote_devices().add(this);
}

RemoteDevice::~RemoteDevice() { remote_devices().remove(this); }

RemoteDevice* RemoteDevice::from(const libusb_device* device) {
  return remote_devices().contains(device)
             ? reinterpret_cast<RemoteDevice*>(const_cast<libusb_device*>(device))
             : nullptr;
}

RemoteDevice* RemoteDevice::ref() {
  refs_.fetch_add(1, std::memory_order_relaxed);
  return this;
}

void RemoteDevice::unref() {
  // libusb_device is reference-counted at the C ABI: the last unref frees it.
  if (refs_.fetch_sub(1, std::memory_order_acq_rel) == 1) delete this;
}

std::uint16_t RemoteDevice::vendor_id() const { return topology::vendor_id(info_); }

std::uint16_t RemoteDevice::product_id() const { return topology::product_id(info_); }

int RemoteDevice::open(libusb_device_handle** handle) {
  if (gone()) return LIBUSB_ERROR_NO_DEVICE;
  auto opened = link().client().request(wire::Open{0, device_id()});
  if (!opened) return opened.error();
  *handle = (new RemoteHandle(*this, *opened))->as_libusb();  // freed by libusb_close
  return LIBUSB_SUCCESS;
}

std::uint8_t RemoteDevice::get_port_number() const {
  return info_.port_numbers.empty() ? 0 : info_.port_numbers.back();
}

int RemoteDevice::get_port_numbers(std::uint8_t* port_numbers, int length) const {
  const auto& ports = info_.port_numbers;
  if (static_cast<std::size_t>(length) < ports.size()) return LIBUSB_ERROR_OVERFLOW;
  std::copy(ports.begin(), ports.end(), port_numbers);
  return static_cast<int>(ports.size());
}

libusb_device* RemoteDevice::get_parent() const {
  // The agent lists the hubs above its devices: the parent is one of the context's remote
  // devices (NULL for a root hub, or once the hub has left).
  return context_.parent_of(*this);
}

int RemoteDevice::get_device_descriptor(libusb_device_descriptor* descriptor) const {
  *descriptor = parse_device_descriptor(info_.device_descriptor);
  return LIBUSB_SUCCESS;
}

int RemoteDevice::get_config_descriptor(std::uint8_t index,
                                        libusb_config_descriptor** config) const {
  if (index >= info_.device_descriptor[17]) return LIBUSB_ERROR_NOT_FOUND;
  if (index >= info_.configs.size()) return LIBUSB_ERROR_IO;  // the agent could not read it
  return parse_config_for_program(info_.configs[index], Length::UpToTotal, config);
}

int RemoteDevice::get_config_descriptor_by_value(std::uint8_t value,
                                                 libusb_config_descriptor** config) const {
  for (const wire::Bytes& raw : info_.configs) {
    if (raw.size() > 5 && raw[5] == value)
      return parse_config_for_program(raw, Length::Whole, config);
  }
  return LIBUSB_ERROR_NOT_FOUND;
}

int RemoteDevice::get_active_config_descriptor(libusb_config_descriptor** config) const {
  const std::uint8_t active = active_config_.load();
  if (active == 0) return LIBUSB_ERROR_NOT_FOUND;  // unconfigured, as libusb reports it
  for (const wire::Bytes& raw : info_.configs) {
    if (raw.size() > 5 && raw[5] == active) {
      return parse_config_for_program(raw, Length::UpToTotal, config);
    }
  }
  return LIBUSB_ERROR_NOT_FOUND;
}

// The active configuration's endpoint descriptor for `endpoint`, in `config`; or the error
// libusb's get_max_*packet_size report (OTHER: no active configuration, NOT_FOUND).
Expected<const libusb_endpoint_descriptor*, int> RemoteDevice::active_endpoint(
    unsigned char endpoint, UniqueConfig& config) const {
  libusb_config_descriptor* raw = nullptr;
  if (get_active_config_descriptor(&raw) < 0) return Unexpected{int{LIBUSB_ERROR_OTHER}};
  allocations().remove(raw);  // the shim's own: never handed to the program
  config.reset(raw);
  const libusb_endpoint_descriptor* ep = find_endpoint(config.get(), endpoint);
  if (!ep) return Unexpected{int{LIBUSB_ERROR_NOT_FOUND}};
  return ep;
}

// As libusb computes them, from the active configuration.
int RemoteDevice::get_max_packet_size(unsigned char endpoint) {
  UniqueConfig config;
  auto ep = active_endpoint(endpoint, config);
  return ep ? int{(*ep)->wMaxPacketSize} : ep.error();
}

int RemoteDevice::get_max_iso_packet_size(unsigned char endpoint) {
  UniqueConfig config;
  auto found = active_endpoint(endpoint, config);
  if (!found) return found.error();
  const libusb_endpoint_descriptor* ep = *found;
  int r = LIBUSB_ERROR_NOT_FOUND;
  if (info_.speed >= LIBUSB_SPEED_SUPER) {
    libusb_ss_endpoint_companion_descriptor* companion = nullptr;
    r = libusb_get_ss_endpoint_companion_descriptor(context_.as_libusb(), ep, &companion);
    if (r == LIBUSB_SUCCESS) {
      r = companion->wBytesPerInterval;
      libusb_free_ss_endpoint_companion_descriptor(companion);
    }
  }
  if (info_.speed < LIBUSB_SPEED_SUPER || r < 0) {
    const std::uint16_t value = ep->wMaxPacketSize;
    const int type = ep->bmAttributes & 0x3;
    r = value & 0x07ff;
    if (type == LIBUSB_ENDPOINT_TRANSFER_TYPE_ISOCHRONOUS ||
        type == LIBUSB_ENDPOINT_TRANSFER_TYPE_INTERRUPT) {
      r *= 1 + ((value >> 11) & 3);
    }
  }
  return r;
}

}  // namespace usbnet::interpose
