#include "agent/usb_context.h"

#include "agent/usb_event_pump.h"

#include "common/log.h"
#include "usbnet/messages.h"

namespace usbnet::agent {

Expected<std::shared_ptr<UsbContext>, std::string> UsbContext::create() {
  libusb_context* ctx = nullptr;
  if (const int r = libusb_init(&ctx); r != 0) {
    return Unexpected{std::string("libusb_init failed: ") + libusb_error_name(r)};
  }
  return std::make_shared<UsbContext>(ctx);
}

UsbContext::~UsbContext() {
  if (events_) events_->stop();
  libusb_exit(ctx_);
}

void UsbContext::handle_events(const boost::asio::any_io_executor& io) {
  std::call_once(started_, [&] { events_ = UsbEventPump::start(io, ctx_); });
}

UsbDeviceRef::UsbDeviceRef(UsbContextPtr context, libusb_device* device)
    : context_(std::move(context)), device_(libusb_ref_device(device)) {}

std::vector<UsbDeviceRef> list_devices(const UsbContextPtr& context) {
  libusb_device** list = nullptr;
  const ssize_t n = libusb_get_device_list(context->get(), &list);
  if (n < 0) {
    log::warn("libusb_get_device_list failed: {}", libusb_error_name(static_cast<int>(n)));
    return {};
  }
  std::vector<UsbDeviceRef> devices;
  devices.reserve(static_cast<std::size_t>(n));
  for (ssize_t i = 0; i < n; ++i) devices.emplace_back(context, list[i]);
  libusb_free_device_list(list, 1);
  return devices;
}

UsbIdentity identify(libusb_device* device) {
  UsbIdentity id;
  id.bus = libusb_get_bus_number(device);
  id.address = libusb_get_device_address(device);
  std::uint8_t ports[wire::kMaxPortNumbers];
  const int n = libusb_get_port_numbers(device, ports, wire::kMaxPortNumbers);
  if (n > 0) id.ports.assign(ports, ports + n);
  return id;
}

}  // namespace usbnet::agent
