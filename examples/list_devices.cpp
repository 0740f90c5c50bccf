// list_devices: every USB device libusb sees, with its descriptors (a small `lsusb -v`).
//
//   list_devices            all devices
//   list_devices VID:PID    only those
#include <cstring>
#include <vector>

#include "example_util.h"

namespace {

const char* speed_name(int speed) {
  switch (speed) {
    case LIBUSB_SPEED_LOW:
      return "low (1.5 Mbit/s)";
    case LIBUSB_SPEED_FULL:
      return "full (12 Mbit/s)";
    case LIBUSB_SPEED_HIGH:
      return "high (480 Mbit/s)";
    case LIBUSB_SPEED_SUPER:
      return "super (5 Gbit/s)";
    case LIBUSB_SPEED_SUPER_PLUS:
      return "super plus (10 Gbit/s)";
  }
  return "unknown";
}

const char* transfer_type(int attributes) {
  switch (attributes & 3) {
    case LIBUSB_ENDPOINT_TRANSFER_TYPE_CONTROL:
      return "control";
    case LIBUSB_ENDPOINT_TRANSFER_TYPE_ISOCHRONOUS:
      return "isochronous";
    case LIBUSB_ENDPOINT_TRANSFER_TYPE_BULK:
      return "bulk";
  }
  return "interrupt";
}

std::string string_of(libusb_device_handle* h, std::uint8_t index) {
  if (!h || index == 0) return "";
  unsigned char text[256];
  const int n = libusb_get_string_descriptor_ascii(h, index, text, sizeof text);
  if (n < 0) return std::string("(") + libusb_error_name(n) + ")";
  return std::string(reinterpret_cast<char*>(text), static_cast<std::size_t>(n));
}

void print_extra(const char* indent, const unsigned char* extra, int length) {
  if (length <= 0) return;
  std::printf("%sextra (%d bytes):", indent, length);
  for (int i = 0; i < length; ++i) std::printf(" %02x", extra[i]);
  std::printf("\n");
}

void print_bos(libusb_context* ctx, libusb_device_handle* h) {
  libusb_bos_descriptor* bos = nullptr;
  if (libusb_get_bos_descriptor(h, &bos) != LIBUSB_SUCCESS) return;
  std::printf("  BOS: %u capabilities, wTotalLength %u\n", bos->bNumDeviceCaps, bos->wTotalLength);
  for (int i = 0; i < bos->bNumDeviceCaps; ++i) {
    libusb_bos_dev_capability_descriptor* cap = bos->dev_capability[i];
    switch (cap->bDevCapabilityType) {
      case LIBUSB_BT_USB_2_0_EXTENSION: {
        libusb_usb_2_0_extension_descriptor* ext = nullptr;
        if (libusb_get_usb_2_0_extension_descriptor(ctx, cap, &ext) == 0) {
          std::printf("    USB 2.0 extension: bmAttributes 0x%08x\n", ext->bmAttributes);
          libusb_free_usb_2_0_extension_descriptor(ext);
        }
        break;
      }
      case LIBUSB_BT_SS_USB_DEVICE_CAPABILITY: {
        libusb_ss_usb_device_capability_descriptor* ss = nullptr;
        if (libusb_get_ss_usb_device_capability_descriptor(ctx, cap, &ss) == 0) {
          std::printf("    SuperSpeed: wSpeedSupported 0x%04x, U1 %u, U2 %u\n", ss->wSpeedSupported,
                      ss->bU1DevExitLat, ss->bU2DevExitLat);
          libusb_free_ss_usb_device_capability_descriptor(ss);
        }
        break;
      }
      case LIBUSB_BT_CONTAINER_ID: {
        libusb_container_id_descriptor* id = nullptr;
        if (libusb_get_container_id_descriptor(ctx, cap, &id) == 0) {
          std::printf("    container ID:");
          for (unsigned char b : id->ContainerID) std::printf(" %02x", b);
          std::printf("\n");
          libusb_free_container_id_descriptor(id);
        }
        break;
      }
      default:
        std::printf("    capability type 0x%02x\n", cap->bDevCapabilityType);
    }
  }
  libusb_free_bos_descriptor(bos);
}

void print_device(libusb_context* ctx, libusb_device* dev) {
  libusb_device_descriptor d{};
  example::check(libusb_get_device_descriptor(dev, &d), "libusb_get_device_descriptor");
  std::uint8_t ports[8];
  const int port_count = libusb_get_port_numbers(dev, ports, sizeof ports);
  std::printf("Bus %03u Device %03u: ID %04x:%04x, %s speed, port", libusb_get_bus_number(dev),
              libusb_get_device_address(dev), d.idVendor, d.idProduct,
              speed_name(libusb_get_device_speed(dev)));
  for (int i = 0; i < port_count; ++i) std::printf("%s%u", i ? "." : " ", ports[i]);
  std::printf("\n");
  libusb_device_handle* h = nullptr;
  const int opened = libusb_open(dev, &h);
  std::printf(
      "  bcdUSB %x.%02x, class 0x%02x/0x%02x/0x%02x, bMaxPacketSize0 %u, bcdDevice %x.%02x\n",
      d.bcdUSB >> 8, d.bcdUSB & 0xff, d.bDeviceClass, d.bDeviceSubClass, d.bDeviceProtocol,
      d.bMaxPacketSize0, d.bcdDevice >> 8, d.bcdDevice & 0xff);
  if (opened == 0) {
    std::printf("  manufacturer \"%s\", product \"%s\", serial \"%s\"\n",
                string_of(h, d.iManufacturer).c_str(), string_of(h, d.iProduct).c_str(),
                string_of(h, d.iSerialNumber).c_str());
    int config = 0;
    if (libusb_get_configuration(h, &config) == 0)
      std::printf("  active configuration %d\n", config);
  } else {
    std::printf("  (cannot open: %s)\n", libusb_error_name(opened));
  }
  for (int c = 0; c < d.bNumConfigurations; ++c) {
    libusb_config_descriptor* config = nullptr;
    if (libusb_get_config_descriptor(dev, static_cast<std::uint8_t>(c), &config) != 0) continue;
    std::printf("  configuration %u \"%s\": %u interfaces, attributes 0x%02x, %u mA\n",
                config->bConfigurationValue, string_of(h, config->iConfiguration).c_str(),
                config->bNumInterfaces, config->bmAttributes, config->MaxPower * 2);
    print_extra("    ", config->extra, config->extra_length);
    for (int i = 0; i < config->bNumInterfaces; ++i) {
      const libusb_interface& iface = config->interface[i];
      for (int a = 0; a < iface.num_altsetting; ++a) {
        const libusb_interface_descriptor& alt = iface.altsetting[a];
        std::printf("    interface %u alt %u \"%s\": class 0x%02x/0x%02x/0x%02x, %u endpoints\n",
                    alt.bInterfaceNumber, alt.bAlternateSetting,
                    string_of(h, alt.iInterface).c_str(), alt.bInterfaceClass,
                    alt.bInterfaceSubClass, alt.bInterfaceProtocol, alt.bNumEndpoints);
        print_extra("      ", alt.extra, alt.extra_length);
        for (int e = 0; e < alt.bNumEndpoints; ++e) {
          const libusb_endpoint_descriptor& ep = alt.endpoint[e];
          std::printf("      endpoint 0x%02x %s %s, wMaxPacketSize %u, bInterval %u\n",
                      ep.bEndpointAddress, (ep.bEndpointAddress & 0x80) ? "IN" : "OUT",
                      transfer_type(ep.bmAttributes), ep.wMaxPacketSize, ep.bInterval);
          libusb_ss_endpoint_companion_descriptor* companion = nullptr;
          if (libusb_get_ss_endpoint_companion_descriptor(ctx, &ep, &companion) == 0) {
            std::printf("        SuperSpeed companion: bMaxBurst %u, wBytesPerInterval %u\n",
                        companion->bMaxBurst, companion->wBytesPerInterval);
            libusb_free_ss_endpoint_companion_descriptor(companion);
          } else {
            print_extra("        ", ep.extra, ep.extra_length);
          }
        }
      }
    }
    libusb_free_config_descriptor(config);
  }
  if (h) {
    print_bos(ctx, h);
    libusb_close(h);
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::uint16_t vid = 0, pid = 0;
  const bool filter = argc > 1;
  if (filter && !example::parse_vid_pid(argv[1], vid, pid)) {
    std::fprintf(stderr, "usage: %s [VID:PID]\n", argv[0]);
    return 2;
  }
  example::Context ctx = example::init();
  libusb_device** list = nullptr;
  const ssize_t n = example::check(static_cast<int>(libusb_get_device_list(ctx.get(), &list)),
                                   "libusb_get_device_list");
  int shown = 0;
  for (ssize_t i = 0; i < n; ++i) {
    libusb_device_descriptor d{};
    if (libusb_get_device_descriptor(list[i], &d) != 0) continue;
    if (filter && (d.idVendor != vid || d.idProduct != pid)) continue;
    print_device(ctx.get(), list[i]);
    ++shown;
  }
  libusb_free_device_list(list, 1);
  std::printf("%d device%s\n", shown, shown == 1 ? "" : "s");
  return filter && shown == 0 ? 1 : 0;
}
