// The whole usbnet wire protocol: layouts, messages, stream decoding, payload pieces.
#pragma once

#include "usbnet/messages.h"
#include "usbnet/pieces.h"
#include "usbnet/protocol.h"
#include "usbnet/stream_decoder.h"
#include "usbnet/wire_error.h"
