// Parsing as libusb 1.0.26's descriptor.c does (read for its semantics; not copied), except
// where libusb would hand out a struct that crashes its reader (see parse_interface). The
// structure mirrors its rules: a descriptor of the wrong type or running past the data ends the
// parse quietly with what was parsed so far; a descriptor whose bLength is below its minimum is
// an I/O error; class-specific descriptors are gathered into `extra` up to the next endpoint,
// interface, configuration or device descriptor.
#include "interpose/descriptors/descriptors.h"

#include <cstdlib>
#include <cstring>

namespace usbnet::interpose {

namespace {

constexpr int kHeaderLength = 2;
constexpr int kMaxInterfaces = 32;  // libusb's USB_MAXINTERFACES
constexpr int kMaxEndpoints = 32;   // libusb's USB_MAXENDPOINTS

std::uint16_t le16(const std::uint8_t* p) { return static_cast<std::uint16_t>(p[0] | p[1] << 8); }

bool ends_extra(std::uint8_t type) {
  return type == LIBUSB_DT_ENDPOINT || type == LIBUSB_DT_INTERFACE || type == LIBUSB_DT_CONFIG ||
         type == LIBUSB_DT_DEVICE;
}

// The class-specific descriptors at `p`: how many bytes they take, or why they cannot be read.
enum class ExtraEnd { Boundary, Short, Invalid };
struct ExtraScan {
  int length = 0;
  ExtraEnd end = ExtraEnd::Boundary;
};
ExtraScan scan_extra(const std::uint8_t* p, int size) {
  ExtraScan scan;
  while (size - scan.length >= kHeaderLength) {
    const std::uint8_t length = p[scan.length];
    if (length < kHeaderLength) {
      scan.end = ExtraEnd::Invalid;
      return scan;
    }
    if (length > size - scan.length) {
      scan.end = ExtraEnd::Short;
      return scan;
    }
    if (ends_extra(p[scan.length + 1])) break;
    scan.length += length;
  }
  return scan;
}

// A malloc'd copy of `length` bytes (nullptr for none); false when out of memory.
bool copy_extra(const std::uint8_t* p, int length, const unsigned char*& extra, int& extra_length) {
  if (length <= 0) return true;
  auto* copy = static_cast<unsigned char*>(std::malloc(static_cast<std::size_t>(length)));
  if (!copy) return false;
  std::memcpy(copy, p, static_cast<std::size_t>(length));
  extra = copy;
  extra_length = length;
  return true;
}

// One endpoint descriptor and its class-specific descriptors. Returns the bytes it took, 0 when
// no endpoint descriptor can be read here (the parse stops), or an error.
int parse_endpoint(libusb_endpoint_descriptor& ep, const std::uint8_t* p, int size) {
  if (size < kHeaderLength) return LIBUSB_ERROR_IO;
  const std::uint8_t length = p[0];
  if (p[1] != LIBUSB_DT_ENDPOINT) return 0;
  if (length < LIBUSB_DT_ENDPOINT_SIZE) return LIBUSB_ERROR_IO;
  if (length > size) return 0;
  ep.bLength = p[0];
  ep.bDescriptorType = p[1];
  ep.bEndpointAddress = p[2];
  ep.bmAttributes = p[3];
  ep.wMaxPacketSize = le16(p + 4);
  ep.bInterval = p[6];
  if (length >= LIBUSB_DT_ENDPOINT_AUDIO_SIZE) {  // audio endpoints have two more fields
    ep.bRefresh = p[7];
    ep.bSynchAddress = p[8];
  }
  p += length;
  size -= length;
  const ExtraScan extra = scan_extra(p, size);
  if (extra.end == ExtraEnd::Invalid) return LIBUSB_ERROR_IO;
  if (extra.end == ExtraEnd::Short) return length + extra.length;  // extras dropped, as libusb
  if (!copy_extra(p, extra.length, ep.extra, ep.extra_length)) return LIBUSB_ERROR_NO_MEM;
  return length + extra.length;
}

void clear_interface(libusb_interface& iface) {
  auto* alts = const_cast<libusb_interface_descriptor*>(iface.altsetting);
  for (int a = 0; alts && a < iface.num_altsetting; ++a) {
    std::free(const_cast<unsigned char*>(alts[a].extra));
    auto* endpoints = const_cast<libusb_endpoint_descriptor*>(alts[a].endpoint);
    for (int e = 0; endpoints && e < alts[a].bNumEndpoints; ++e) {
      std::free(const_cast<unsigned char*>(endpoints[e].extra));
    }
    std::free(endpoints);
  }
  std::free(alts);
  iface.altsetting = nullptr;
}

// The alternate settings of one interface. Returns the bytes taken (0: nothing could be
// parsed), or an error (after freeing what it had built).
int parse_interface(libusb_interface& iface, const std::uint8_t* p, int size) {
  int parsed = 0;
  int number = -1;
  auto fail = [&](int error) {
    clear_interface(iface);
    return error;
  };
  // A quiet stop before any alternate setting: the configuration ends its interfaces before
  // this one and will not free it, so its array goes now (libusb leaks it here).
  auto stop = [&] {
    if (iface.num_altsetting == 0) {
      std::free(const_cast<libusb_interface_descriptor*>(iface.altsetting));
      iface.altsetting = nullptr;
    }
    return parsed;
  };
  while (size >= LIBUSB_DT_INTERFACE_SIZE) {
    auto* grown = static_cast<libusb_interface_descriptor*>(std::realloc(
        const_cast<libusb_interface_descriptor*>(iface.altsetting),
        sizeof(libusb_interface_descriptor) * static_cast<std::size_t>(iface.num_altsetting + 1)));
    if (!grown) return fail(LIBUSB_ERROR_NO_MEM);
    iface.altsetting = grown;
    libusb_interface_descriptor& alt = grown[iface.num_altsetting];
    alt = {};
    alt.bLength = p[0];
    alt.bDescriptorType = p[1];
    alt.bInterfaceNumber = p[2];
    alt.bAlternateSetting = p[3];
    alt.bNumEndpoints = p[4];
    alt.bInterfaceClass = p[5];
    alt.bInterfaceSubClass = p[6];
    alt.bInterfaceProtocol = p[7];
    alt.iInterface = p[8];
    if (alt.bDescriptorType != LIBUSB_DT_INTERFACE) return stop();
    if (alt.bLength < LIBUSB_DT_INTERFACE_SIZE) return fail(LIBUSB_ERROR_IO);
    if (alt.bLength > size) return stop();
    if (alt.bNumEndpoints > kMaxEndpoints) return fail(LIBUSB_ERROR_IO);
    ++iface.num_altsetting;
    if (number == -1) number = alt.bInterfaceNumber;
    p += alt.bLength;
    parsed += alt.bLength;
    size -= alt.bLength;

    const ExtraScan extra = scan_extra(p, size);
    if (extra.end == ExtraEnd::Invalid) return fail(LIBUSB_ERROR_IO);
    if (extra.end == ExtraEnd::Short) {
      // libusb leaves bNumEndpoints as announced beside a null endpoint array here, which a
      // program that walks the endpoints dereferences; descriptors from the network get none.
      alt.bNumEndpoints = 0;
      return parsed + extra.length;
    }
    if (!copy_extra(p, extra.length, alt.extra, alt.extra_length)) {
      return fail(LIBUSB_ERROR_NO_MEM);
    }
    p += extra.length;
    parsed += extra.length;
    size -= extra.length;

    if (alt.bNumEndpoints > 0) {
      auto* endpoints = static_cast<libusb_endpoint_descriptor*>(
          std::calloc(alt.bNumEndpoints, sizeof(libusb_endpoint_descriptor)));
      if (!endpoints) return fail(LIBUSB_ERROR_NO_MEM);
      alt.endpoint = endpoints;
      for (std::uint8_t e = 0; e < alt.bNumEndpoints; ++e) {
        const int r = parse_endpoint(endpoints[e], p, size);
        if (r < 0) return fail(r);
        if (r == 0) {
          alt.bNumEndpoints = e;
          break;
        }
        p += r;
        parsed += r;
        size -= r;
      }
    }
    // Another alternate setting of the same interface follows?
    if (size < LIBUSB_DT_INTERFACE_SIZE || p[1] != LIBUSB_DT_INTERFACE || p[2] != number) {
      return parsed;
    }
  }
  return parsed;
}

void clear_configuration(libusb_config_descriptor& config) {
  auto* interfaces = const_cast<libusb_interface*>(config.interface);
  for (int i = 0; interfaces && i < config.bNumInterfaces; ++i) clear_interface(interfaces[i]);
  std::free(interfaces);
  std::free(const_cast<unsigned char*>(config.extra));
  config.interface = nullptr;
  config.extra = nullptr;
}

// Returns the bytes left over, or an error (after freeing what it had built).
int parse_configuration(libusb_config_descriptor& config, const std::uint8_t* p, int size) {
  if (size < LIBUSB_DT_CONFIG_SIZE) return LIBUSB_ERROR_IO;
  config.bLength = p[0];
  config.bDescriptorType = p[1];
  config.wTotalLength = le16(p + 2);
  config.bNumInterfaces = p[4];
  config.bConfigurationValue = p[5];
  config.iConfiguration = p[6];
  config.bmAttributes = p[7];
  config.MaxPower = p[8];
  if (config.bDescriptorType != LIBUSB_DT_CONFIG || config.bLength < LIBUSB_DT_CONFIG_SIZE ||
      config.bLength > size || config.bNumInterfaces > kMaxInterfaces) {
    return LIBUSB_ERROR_IO;
  }
  auto* interfaces =
      static_cast<libusb_interface*>(std::calloc(config.bNumInterfaces, sizeof(libusb_interface)));
  if (!interfaces) return LIBUSB_ERROR_NO_MEM;
  config.interface = interfaces;
  auto fail = [&](int error) {
    clear_configuration(config);
    return error;
  };
  p += config.bLength;
  size -= config.bLength;
  for (std::uint8_t i = 0; i < config.bNumInterfaces; ++i) {
    const ExtraScan extra = scan_extra(p, size);
    if (extra.end == ExtraEnd::Invalid) return fail(LIBUSB_ERROR_IO);
    if (extra.end == ExtraEnd::Short) {
      config.bNumInterfaces = i;
      return size - extra.length;
    }
    if (extra.length > 0) {
      // Class-specific descriptors before each interface all go to the configuration's extra.
      auto* grown = static_cast<unsigned char*>(
          std::realloc(const_cast<unsigned char*>(config.extra),
                       static_cast<std::size_t>(config.extra_length + extra.length)));
      if (!grown) return fail(LIBUSB_ERROR_NO_MEM);
      std::memcpy(grown + config.extra_length, p, static_cast<std::size_t>(extra.length));
      config.extra = grown;
      config.extra_length += extra.length;
      p += extra.length;
      size -= extra.length;
    }
    const int r = parse_interface(interfaces[i], p, size);
    if (r < 0) return fail(r);
    if (r == 0) {
      config.bNumInterfaces = i;
      break;
    }
    p += r;
    size -= r;
  }
  return size;
}

}  // namespace

libusb_device_descriptor parse_device_descriptor(std::span<const std::uint8_t, 18> raw) {
  const std::uint8_t* p = raw.data();
  libusb_device_descriptor d{};
  d.bLength = p[0];
  d.bDescriptorType = p[1];
  d.bcdUSB = le16(p + 2);
  d.bDeviceClass = p[4];
  d.bDeviceSubClass = p[5];
  d.bDeviceProtocol = p[6];
  d.bMaxPacketSize0 = p[7];
  d.idVendor = le16(p + 8);
  d.idProduct = le16(p + 10);
  d.bcdDevice = le16(p + 12);
  d.iManufacturer = p[14];
  d.iProduct = p[15];
  d.iSerialNumber = p[16];
  d.bNumConfigurations = p[17];
  return d;
}

Expected<libusb_config_descriptor*, int> parse_config_descriptor(RawDescriptor raw) {
  auto* config =
      static_cast<libusb_config_descriptor*>(std::calloc(1, sizeof(libusb_config_descriptor)));
  if (!config) return Unexpected{int{LIBUSB_ERROR_NO_MEM}};
  const int r = parse_configuration(*config, raw.data(), static_cast<int>(raw.size()));
  if (r < 0) {
    std::free(config);
    return Unexpected{r};
  }
  return config;
}

void free_config_descriptor(libusb_config_descriptor* config) {
  if (!config) return;
  clear_configuration(*config);
  std::free(config);
}

Expected<libusb_bos_descriptor*, int> parse_bos_descriptor(RawDescriptor raw) {
  const std::uint8_t* p = raw.data();
  int size = static_cast<int>(raw.size());
  if (size < LIBUSB_DT_BOS_SIZE || p[1] != LIBUSB_DT_BOS || p[0] < LIBUSB_DT_BOS_SIZE ||
      p[0] > size) {
    return Unexpected{int{LIBUSB_ERROR_IO}};
  }
  const std::uint8_t declared = p[4];
  auto* bos = static_cast<libusb_bos_descriptor*>(
      std::calloc(1, sizeof(libusb_bos_descriptor) + declared * sizeof(void*)));
  if (!bos) return Unexpected{int{LIBUSB_ERROR_NO_MEM}};
  bos->bLength = p[0];
  bos->bDescriptorType = p[1];
  bos->wTotalLength = le16(p + 2);
  bos->bNumDeviceCaps = declared;
  p += bos->bLength;
  size -= bos->bLength;
  std::uint8_t i = 0;
  for (; i < declared; ++i) {
    // A capability that cannot be read ends the list; one with an impossible length fails it.
    if (size < LIBUSB_DT_DEVICE_CAPABILITY_SIZE || p[1] != LIBUSB_DT_DEVICE_CAPABILITY) break;
    if (p[0] < LIBUSB_DT_DEVICE_CAPABILITY_SIZE) {
      bos->bNumDeviceCaps = i;
      free_bos_descriptor(bos);
      return Unexpected{int{LIBUSB_ERROR_IO}};
    }
    if (p[0] > size) break;
    auto* cap = static_cast<libusb_bos_dev_capability_descriptor*>(std::malloc(p[0]));
    if (!cap) {
      bos->bNumDeviceCaps = i;
      free_bos_descriptor(bos);
      return Unexpected{int{LIBUSB_ERROR_NO_MEM}};
    }
    std::memcpy(cap, p, p[0]);
    bos->dev_capability[i] = cap;
    size -= p[0];
    p += p[0];
  }
  bos->bNumDeviceCaps = i;
  return bos;
}

void free_bos_descriptor(libusb_bos_descriptor* bos) {
  if (!bos) return;
  for (int i = 0; i < bos->bNumDeviceCaps; ++i) std::free(bos->dev_capability[i]);
  std::free(bos);
}

}  // namespace usbnet::interpose
