#include "agent/urb_capture.h"

#include <cerrno>

namespace usbnet::agent {

UrbCapture::UrbCapture(std::unique_ptr<capture::PcapFile> file) : file_(std::move(file)) {}

capture::Urb UrbCapture::describe(const wire::DeviceInfo* device, const Transfer& t) const {
  capture::Urb urb;
  urb.id = reinterpret_cast<std::uintptr_t>(&t);  // as the kernel uses the URB's address
  if (device) {
    urb.bus = device->bus_number;
    urb.address = device->device_address;
  }
  urb.type = t.type;
  urb.endpoint = t.endpoint;
  urb.flags = t.flags;
  urb.setup = t.setup;
  urb.length = static_cast<std::uint32_t>(t.buffer.size());
  urb.iso_lengths = t.iso_lengths;
  if (device) urb.interval = capture::interval(*device, t.endpoint, t.type);
  return urb;
}

void UrbCapture::submitted(const wire::DeviceInfo& device, const Transfer& t) {
  if (!file_->active()) return;
  const capture::Timestamp now = capture::PcapFile::now();
  if (enumerated_.insert(device.device_id).second) {
    // Ids far from any address, that the transfers' own never meet.
    capture::append_enumeration(records_, device, device.bus_number, next_enumeration_id_, now);
    next_enumeration_id_ += device.configs.size() + 1;
  }
  capture::Urb urb = describe(&device, t);
  capture::append_submission(records_, urb, t.buffer, now);
  in_flight_[&t] = std::move(urb);
  write();
}

void UrbCapture::completed(const Transfer& t, const wire::DeviceInfo* device) {
  auto it = in_flight_.find(&t);
  if (!file_->active()) {
    if (it != in_flight_.end()) in_flight_.erase(it);
    return;
  }
  const capture::Timestamp now = capture::PcapFile::now();
  if (it == in_flight_.end()) {
    capture::append_submission_error(records_, describe(device, t), capture::errno_status(t.status),
                                     now);
  } else {
    const capture::Outcome outcome{t.status, t.actual_length, t.iso_results};
    const bool prepared = t.iso_lengths.empty() && t.in_data.size() >= t.actual_length;
    const wire::ByteView in =
        prepared ? t.in_data : wire::ByteView(t.buffer.data(), t.buffer.size());
    capture::append_completion(records_, it->second, outcome, in, now);
    in_flight_.erase(it);
  }
  write();
}

void UrbCapture::write() {
  file_->write(records_);
  records_.clear();
}

}  // namespace usbnet::agent
