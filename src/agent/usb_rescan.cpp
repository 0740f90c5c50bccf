#include "agent/usb_rescan.h"

#include <cstring>
#include <map>

#include "agent/usb_sysfs_listing.h"
#include "common/log.h"

namespace usbnet::agent {

namespace {

bool same_descriptor(libusb_device* a, libusb_device* b) {
  libusb_device_descriptor da{}, db{};
  if (libusb_get_device_descriptor(a, &da) != 0 || libusb_get_device_descriptor(b, &db) != 0) {
    return false;
  }
  return std::memcmp(&da, &db, sizeof da) == 0;
}

}  // namespace

UsbRescanner::UsbRescanner(UsbContextPtr primary, std::chrono::milliseconds interval, Found found)
    : primary_(std::move(primary)),
      interval_(interval),
      found_(std::move(found)),
      thread_([this] { run(); }) {}

UsbRescanner::~UsbRescanner() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_one();
  thread_.join();
}

void UsbRescanner::run() {
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    lock.unlock();
    if (auto found = enumerate()) found_(std::move(found));
    lock.lock();
    wake_.wait_for(lock, interval_, [this] { return stopping_; });
  }
}

std::shared_ptr<const Enumeration> UsbRescanner::enumerate() {
  auto round = std::make_shared<Enumeration>();
  round->started = DevicePresence::Clock::now();
  // The kernel's listing first (read after `started`, like the enumeration would be): while it
  // stays the same, so do the devices, and the last round's findings stand for this one.
  std::optional<std::string> listing = usb_sysfs_listing();
  if (listing && last_ && listing == last_listing_) {
    round->devices = last_->devices;
    return round;
  }
  last_listing_ = std::move(listing);
  last_ = round;
  auto fresh = UsbContext::create();
  if (!fresh) {
    last_.reset();
    if (!std::exchange(warned_, true)) log::warn("rescanning USB devices: {}", fresh.error());
    return nullptr;
  }
  // The long-lived context's record of a device, when it has one (the same place, address and
  // descriptor: an address is only reused after many plugs, but then it is another device).
  std::map<UsbIdentity, UsbDeviceRef> known;
  for (UsbDeviceRef& d : list_devices(primary_)) known.emplace(identify(d.get()), std::move(d));
  for (UsbDeviceRef& d : list_devices(*fresh)) {
    UsbIdentity id = identify(d.get());
    auto k = known.find(id);
    if (k != known.end() && same_descriptor(k->second.get(), d.get())) {
      round->devices.emplace_back(std::move(id), k->second);
    } else {
      round->devices.emplace_back(std::move(id), std::move(d));
    }
  }
  // The fresh context lives on only if a device above belongs to it.
  return round;
}

}  // namespace usbnet::agent
