// USBNET_PCAP=FILE: every remote URB's submission and completion as Linux usbmon records (see
// capture/usbmon.h), so that Wireshark decodes a program's remote USB traffic as a capture of
// its bus. Each remote device's descriptors come first, once per process, as the
// GET_DESCRIPTOR exchanges of its enumeration. USBNET_PCAP_MAX_BYTES bounds the file.
//
// A URB is known by a key the caller chooses (the libusb_transfer, or the synchronous call's
// own state): it is the usbmon URB id, as the kernel uses the URB's address. Thread-safe.
#pragma once

#include <libusb.h>

#include "usbnet/messages.h"

namespace usbnet::interpose {

class RemoteDevice;

bool capturing();
// The URB is about to go to the agent.
void capture_submission(const void* key, const RemoteDevice& device, const wire::UrbSubmit& urb);
// It did not: `error` is the libusb error code the submission returns.
void capture_submission_error(const void* key, int error);
// Its answer; `in_buffer` is where the IN data landed, laid out as the program's buffer.
void capture_completion(const void* key, wire::UrbStatus status, std::uint32_t actual_length,
                        std::span<const wire::IsoPacketResult> iso, wire::ByteView in_buffer);

}  // namespace usbnet::interpose
