// usbnet-agent --pcap FILE: every URB the sessions hand to their devices, and its completion,
// as Linux usbmon records (see capture/usbmon.h), so that Wireshark shows the agent's side of
// the traffic as a capture of its USB bus. Each device's descriptors come first, once per
// file, as the GET_DESCRIPTOR exchanges of its enumeration. Runs on the io thread.
#pragma once

#include <memory>
#include <set>
#include <unordered_map>

#include "agent/device.h"
#include "capture/pcap_file.h"
#include "capture/usbmon.h"

namespace usbnet::agent {

class UrbCapture {
 public:
  explicit UrbCapture(std::unique_ptr<capture::PcapFile> file);

  // The URB goes to the device.
  void submitted(const wire::DeviceInfo& device, const Transfer& transfer);
  // Its answer: a completion if submitted() saw it, else a submission error (the URB never
  // reached the device; `device` is null when its handle is unknown).
  void completed(const Transfer& transfer, const wire::DeviceInfo* device);

 private:
  capture::Urb describe(const wire::DeviceInfo* device, const Transfer& transfer) const;
  void write();

  std::unique_ptr<capture::PcapFile> file_;
  std::unordered_map<const Transfer*, capture::Urb> in_flight_;
  std::set<std::uint32_t> enumerated_;  // device ids whose descriptors are in the file
  std::uint64_t next_enumeration_id_ = 1;
  wire::Bytes records_;
};

}  // namespace usbnet::agent
