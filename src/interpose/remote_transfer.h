// Transfers on remote devices, asynchronous as libusb's io.c runs them (RemoteHandle's
// submit_transfer, cancel_transfer and free_transfer): a submission goes to the agent client,
// whose table holds the URB until its completion; the answer is written into the
// libusb_transfer on the thread that reads it, and the callback runs in the thread that handles
// the context's events.
#pragma once

#include <libusb.h>

namespace usbnet::interpose {

// Runs in the event-handling thread: the callback of a transfer whose outcome is filled in.
void run_transfer_callback(libusb_transfer* transfer);

}  // namespace usbnet::interpose
