// Transfers on remote devices: the asynchronous core (submit, cancel, completion in the event
// thread) and the synchronous calls built on it, with libusb's semantics.
#pragma once

#include <libusb.h>

#include "client/urb_tracker.h"

namespace usbnet::interpose {

class RemoteHandle;

// libusb_submit_transfer for a transfer whose dev_handle is remote.
int submit_remote_transfer(RemoteHandle& handle, libusb_transfer* transfer);
// libusb_cancel_transfer for a transfer in flight on a remote device; NOT_FOUND otherwise.
int cancel_remote_transfer(libusb_transfer* transfer);
bool is_remote_transfer_in_flight(const libusb_transfer* transfer);
// Runs in the event-handling thread: fills in the results and calls the callback.
void complete_remote_transfer(libusb_transfer* transfer, const client::UrbResult& result);

// The synchronous API on remote handles (libusb's sync.c semantics).
int remote_control_transfer(RemoteHandle& handle, std::uint8_t request_type, std::uint8_t request,
                            std::uint16_t value, std::uint16_t index, unsigned char* data,
                            std::uint16_t length, unsigned int timeout);
int remote_bulk_or_interrupt_transfer(RemoteHandle& handle, unsigned char endpoint,
                                      unsigned char* data, int length, int* transferred,
                                      unsigned int timeout, std::uint8_t type);

}  // namespace usbnet::interpose
