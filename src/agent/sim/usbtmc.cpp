// `usbtmc`: a USBTMC/USB488 instrument (USBTMC 1.0 and its USB488 subclass 1.0): bulk OUT
// messages with their 12-byte headers, bTag and its inverse, responses on bulk IN as the host
// requests them (transfer size, EOM, TermChar), the class requests for aborting, clearing and
// capabilities, and USB488's status byte on the interrupt endpoint. The instrument itself, an
// IEEE 488.2 / SCPI power supply, is usbtmc_instrument.cpp.
#include <algorithm>
#include <deque>
#include <optional>

#include "agent/sim/devices.h"
#include "agent/sim/usbtmc_instrument.h"
#include "common/log.h"

namespace usbnet::agent::sim {

namespace {

using wire::UrbStatus;

constexpr std::uint8_t kBulkOut = 0x01, kBulkIn = 0x82, kInterruptIn = 0x83;
constexpr std::uint8_t kInterface = 0;
constexpr std::size_t kHeader = 12;
// A program message longer than this is refused (-223 "Too much data") and discarded.
constexpr std::size_t kInputLimit = 64 * 1024;
constexpr std::size_t kNotificationLimit = 8;

// MsgIDs (USBTMC table 2, USB488 table 2).
constexpr std::uint8_t kDevDepMsgOut = 1, kRequestDevDepMsgIn = 2;

// Class requests (USBTMC table 15, USB488 table 9) and USBTMC_status values (table 16).
constexpr std::uint8_t kInitiateAbortBulkOut = 1, kCheckAbortBulkOutStatus = 2,
                       kInitiateAbortBulkIn = 3, kCheckAbortBulkInStatus = 4, kInitiateClear = 5,
                       kCheckClearStatus = 6, kGetCapabilities = 7, kIndicatorPulse = 64,
                       kReadStatusByte = 128, kRenControl = 160, kGoToLocal = 161,
                       kLocalLockout = 162;
constexpr std::uint8_t kSuccess = 0x01, kPending = 0x02, kFailed = 0x80,
                       kTransferNotInProgress = 0x81;
constexpr std::uint8_t kClassInterfaceIn = 0xa1, kClassEndpointIn = 0xa2;

std::uint32_t le32(const std::uint8_t* p) {
  return static_cast<std::uint32_t>(p[0] | p[1] << 8 | p[2] << 16) |
         static_cast<std::uint32_t>(p[3]) << 24;
}

void put32(Bytes& b, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) b.push_back(static_cast<std::uint8_t>(v >> (8 * i)));
}

Bytes status_reply(std::uint8_t status, std::uint32_t count, std::uint8_t second = 0) {
  Bytes b{status, second, 0, 0};
  put32(b, count);
  return b;
}

class UsbtmcDevice final : public SimDevice {
 public:
  using SimDevice::SimDevice;

 private:
  // A request for a response (REQUEST_DEV_DEP_MSG_IN), waiting for the bulk IN endpoint.
  struct InRequest {
    std::uint8_t tag;
    std::uint32_t size;
    std::optional<std::uint8_t> term_char;
  };

  // A configuration, alternate setting or reset: the interface starts over (the instrument's
  // settings and status stay, as across a device clear).
  void restart() override {
    clear_buffers();
    notifications_.clear();
    last_out_tag_ = last_in_tag_ = 0;
    out_received_ = in_sent_ = 0;
    srq_ = 0;
  }

  void clear_buffers() {
    input_.clear();
    discarding_ = false;
    out_remaining_ = 0;
    output_.clear();
    output_offset_ = 0;
    request_.reset();
    in_message_.clear();
    in_offset_ = 0;
    abort_short_packet_ = false;
  }

  bool message_available() const {
    return output_offset_ < output_.size() || in_offset_ < in_message_.size();
  }

  // ---- bulk and interrupt endpoints ---------------------------------------------------------

  void serve(Endpoint& ep, Pending& head) override {
    switch (ep.address) {
      case kBulkOut:
        return bulk_out(ep, head);
      case kBulkIn:
        return bulk_in(ep, head);
      case kInterruptIn:
        return interrupt_in(ep, head);
    }
  }

  // A malformed or unsupported message: the device halts Bulk-OUT (USBTMC 3.2.2.3); the host
  // recovers with INITIATE_CLEAR or an abort, and CLEAR_FEATURE(ENDPOINT_HALT).
  void halt(Endpoint& ep, Pending& head) {
    out_remaining_ = 0;
    ep.halted = true;
    complete(ep, head, UrbStatus::Stall, 0);
  }

  void bulk_out(Endpoint& ep, Pending& head) {
    const Transfer& t = *head.transfer;
    const auto size = static_cast<std::uint32_t>(t.buffer.size());
    std::span<const std::uint8_t> data(t.buffer.data(), t.buffer.size());
    if (out_remaining_ > 0) {  // the rest of a transfer that began in an earlier transaction
      take_message_data(data);
      return complete(ep, head, UrbStatus::Completed, size);
    }
    if (data.size() < kHeader) return halt(ep, head);
    const std::uint8_t id = data[0], tag = data[1];
    if (tag == 0 || data[2] != static_cast<std::uint8_t>(~tag)) return halt(ep, head);
    if (id == kDevDepMsgOut) {
      last_out_tag_ = tag;
      out_received_ = 0;
      out_remaining_ = le32(&data[4]);
      out_end_of_message_ = (data[8] & 0x01) != 0;
      take_message_data(data.subspan(kHeader));
      return complete(ep, head, UrbStatus::Completed, size);
    }
    if (id == kRequestDevDepMsgIn) {
      InRequest r{tag, le32(&data[4]), std::nullopt};
      if (data[8] & 0x02) r.term_char = data[9];
      if (r.size == 0) return halt(ep, head);
      if (!message_available()) instrument_.error(-420);  // nothing was asked: it waits
      request_ = r;
      last_in_tag_ = tag;
      complete(ep, head, UrbStatus::Completed, size);
      return pump(kBulkIn);
    }
    // VENDOR_SPECIFIC_OUT, REQUEST_VENDOR_SPECIFIC_IN, TRIGGER (not offered in the
    // capabilities) and anything unknown.
    return halt(ep, head);
  }

  // Message bytes of the current DEV_DEP_MSG_OUT (what follows them in the transaction is
  // alignment); a message executes when the transfer that carries EOM is complete.
  void take_message_data(std::span<const std::uint8_t> data) {
    const std::size_t n = std::min<std::size_t>(data.size(), out_remaining_);
    out_remaining_ -= static_cast<std::uint32_t>(n);
    out_received_ += static_cast<std::uint32_t>(n);
    if (!discarding_ && input_.size() + n > kInputLimit) {
      instrument_.error(-223);
      discarding_ = true;
      input_.clear();
    }
    if (!discarding_) input_.append(reinterpret_cast<const char*>(data.data()), n);
    if (out_remaining_ > 0 || !out_end_of_message_) return;
    const bool discarded = discarding_;
    discarding_ = false;
    std::string message = std::move(input_);
    input_.clear();
    if (discarded) return;
    if (message_available()) {  // the previous response was never read
      instrument_.error(-410);
      output_.clear();
      output_offset_ = 0;
      in_message_.clear();
      in_offset_ = 0;
    }
    if (!message.empty() && message.back() == '\n') message.pop_back();
    output_ = instrument_.execute(message);
    output_offset_ = 0;
    check_service_request();
    pump(kBulkIn);
  }

  void bulk_in(Endpoint& ep, Pending& head) {
    Transfer& t = *head.transfer;
    if (in_offset_ == in_message_.size()) {
      in_message_.clear();
      in_offset_ = 0;
      if (abort_short_packet_) {  // ends the host's transfer after INITIATE_ABORT_BULK_IN
        abort_short_packet_ = false;
        return complete(ep, head, UrbStatus::Completed, 0);
      }
      if (!request_ || output_offset_ == output_.size()) return;  // waits for both
      respond(*request_);
      request_.reset();
      check_service_request();  // MAV may have gone
    }
    UrbStatus status;
    std::size_t consumed;
    const std::uint32_t n = packet_rules(in_message_.size() - in_offset_, t.buffer.size(),
                                         ep.max_packet, status, consumed);
    std::copy_n(in_message_.begin() + static_cast<std::ptrdiff_t>(in_offset_), n, t.buffer.begin());
    in_offset_ += consumed;
    in_sent_ += n;
    complete(ep, head, status, n);
  }

  // DEV_DEP_MSG_IN: at most the requested size of the response, up to the TermChar when the
  // host asked for it; EOM when the response ends here. Padded to a multiple of 4 bytes.
  void respond(const InRequest& r) {
    std::size_t n = std::min<std::size_t>(r.size, output_.size() - output_offset_);
    bool at_term_char = false;
    if (r.term_char) {
      const std::size_t at = output_.find(static_cast<char>(*r.term_char), output_offset_);
      if (at != std::string::npos && at < output_offset_ + n) {
        n = at - output_offset_ + 1;
        at_term_char = true;
      }
    }
    const bool eom = output_offset_ + n == output_.size();
    in_message_ = {2, r.tag, static_cast<std::uint8_t>(~r.tag), 0};
    put32(in_message_, static_cast<std::uint32_t>(n));
    in_message_.insert(
        in_message_.end(),
        {static_cast<std::uint8_t>((eom ? 0x01 : 0) | (at_term_char ? 0x02 : 0)), 0, 0, 0});
    in_message_.insert(in_message_.end(),
                       output_.begin() + static_cast<std::ptrdiff_t>(output_offset_),
                       output_.begin() + static_cast<std::ptrdiff_t>(output_offset_ + n));
    in_message_.resize((in_message_.size() + 3) / 4 * 4, 0);
    in_offset_ = 0;
    in_sent_ = 0;
    output_offset_ += n;
    if (output_offset_ == output_.size()) {
      output_.clear();
      output_offset_ = 0;
    }
  }

  void interrupt_in(Endpoint& ep, Pending& head) {
    if (notifications_.empty()) return;
    const Bytes n = notifications_.front();
    notifications_.pop_front();
    UrbStatus status;
    std::size_t consumed;
    const std::uint32_t length =
        packet_rules(n.size(), head.transfer->buffer.size(), ep.max_packet, status, consumed);
    std::copy_n(n.begin(), length, head.transfer->buffer.begin());
    complete(ep, head, status, length);
  }

  void notify(std::uint8_t first, std::uint8_t second) {
    if (notifications_.size() >= kNotificationLimit) notifications_.pop_front();
    notifications_.push_back({first, second});
    pump(kInterruptIn);
  }

  // USB488 3.4.1: a service request is notified once each time one arises.
  void check_service_request() {
    const std::uint8_t srq = instrument_.service_request(message_available());
    if (srq != 0 && srq_ == 0) notify(0x81, instrument_.status_byte(message_available()));
    srq_ = srq;
  }

  // ---- class requests -----------------------------------------------------------------------

  ControlOutcome function_control(const wire::SetupPacket& setup,
                                  std::span<const std::uint8_t>) override {
    const std::uint16_t value = setup.wValue.get();
    const std::uint16_t index = setup.wIndex.get();
    if (setup.bmRequestType == kClassEndpointIn) {
      if (setup.bRequest == kInitiateAbortBulkOut && index == kBulkOut) {
        return abort_bulk_out(static_cast<std::uint8_t>(value));
      }
      if (setup.bRequest == kCheckAbortBulkOutStatus && index == kBulkOut) {
        return ControlOutcome::done(status_reply(kSuccess, out_received_));
      }
      if (setup.bRequest == kInitiateAbortBulkIn && index == kBulkIn) {
        return abort_bulk_in(static_cast<std::uint8_t>(value));
      }
      if (setup.bRequest == kCheckAbortBulkInStatus && index == kBulkIn) {
        const bool pending = abort_short_packet_;
        return ControlOutcome::done(
            status_reply(pending ? kPending : kSuccess, in_sent_, pending ? 1 : 0));
      }
      return ControlOutcome::stall();
    }
    if (setup.bmRequestType != kClassInterfaceIn || index != kInterface) {
      return ControlOutcome::stall();
    }
    switch (setup.bRequest) {
      case kInitiateClear:
        clear_buffers();
        return ControlOutcome::done({kSuccess});
      case kCheckClearStatus:
        return ControlOutcome::done({kSuccess, 0});
      case kGetCapabilities:
        return ControlOutcome::done({kSuccess, 0, 0x00, 0x01,  // bcdUSBTMC 1.00
                                     0x04,  // accepts INDICATOR_PULSE; talks and listens
                                     0x01,  // supports TermChar
                                     0,        0, 0,    0,    0, 0, 0x00, 0x01,  // bcdUSB488 1.00
                                     0x06,  // 488.2 interface; REN_CONTROL and friends
                                     0x0e,  // SCPI, SR1, RL1 (no DT1: no trigger)
                                     0,        0, 0,    0,    0, 0, 0,    0});
      case kIndicatorPulse:
        log::info("simulated usbtmc: indicator pulse");
        return ControlOutcome::done({kSuccess});
      case kReadStatusByte: {
        const auto tag = static_cast<std::uint8_t>(value);
        if (tag < 2 || tag > 127) return ControlOutcome::done({kFailed, tag, 0});
        // With an interrupt endpoint the status byte travels there (USB488 4.3.1.1).
        notify(static_cast<std::uint8_t>(0x80 | tag), instrument_.status_byte(message_available()));
        return ControlOutcome::done({kSuccess, tag, 0});
      }
      case kRenControl:
        // Remote enable on (1) or off (0); the simulated front panel has no local controls.
        if (value > 1) return ControlOutcome::stall();
        return ControlOutcome::done({kSuccess});
      case kGoToLocal:
      case kLocalLockout:
        return ControlOutcome::done({kSuccess});
    }
    return ControlOutcome::stall();
  }

  // USBTMC 4.2.1.2: FAILED when no transfer is in progress, TRANSFER_NOT_IN_PROGRESS when one
  // is but with another bTag.
  ControlOutcome abort_bulk_out(std::uint8_t tag) {
    if (out_remaining_ == 0) return ControlOutcome::done({kFailed, 0});
    if (tag != last_out_tag_) return ControlOutcome::done({kTransferNotInProgress, last_out_tag_});
    out_remaining_ = 0;
    input_.clear();
    discarding_ = false;
    return ControlOutcome::done({kSuccess, tag});
  }

  // USBTMC 4.2.1.4: the response is dropped and the host's transfer ends with a short packet.
  ControlOutcome abort_bulk_in(std::uint8_t tag) {
    const bool in_progress = request_.has_value() || in_offset_ < in_message_.size();
    if (!in_progress) return ControlOutcome::done({kFailed, 0});
    if (tag != last_in_tag_) return ControlOutcome::done({kTransferNotInProgress, last_in_tag_});
    request_.reset();
    in_message_.clear();
    in_offset_ = 0;
    output_.clear();
    output_offset_ = 0;
    abort_short_packet_ = true;
    pump(kBulkIn);
    return ControlOutcome::done({kSuccess, tag});
  }

  ScpiInstrument instrument_;
  std::string input_;                // the program message being received
  bool discarding_ = false;          // it was too long: dropped up to its end
  std::uint32_t out_remaining_ = 0;  // message bytes the current Bulk-OUT transfer still owes
  bool out_end_of_message_ = false;
  std::uint8_t last_out_tag_ = 0, last_in_tag_ = 0;
  std::uint32_t out_received_ = 0, in_sent_ = 0;  // NBYTES_RXD and NBYTES_TXD for the aborts
  std::string output_;  // the response message, sent as the host asks for it
  std::size_t output_offset_ = 0;
  std::optional<InRequest> request_;
  Bytes in_message_;  // the DEV_DEP_MSG_IN on its way out through Bulk-IN
  std::size_t in_offset_ = 0;
  bool abort_short_packet_ = false;
  std::deque<Bytes> notifications_;
  std::uint8_t srq_ = 0;  // the service request bits last notified
};

}  // namespace

std::shared_ptr<SimDevice> make_usbtmc(boost::asio::any_io_executor executor) {
  DeviceDescription d;
  d.name = "usbtmc";
  d.speed = 3;  // high
  d.device = {0x0200, 0, 64, 0x1209, 0x0006, 0x0100, 1, 2, 3};
  d.configs = {{1,
                0,
                0x80,
                50,
                {{kInterface,
                  0,
                  0xfe,
                  0x03,
                  0x01,
                  0,
                  {},
                  {{kBulkOut, 0x02, 512, 0, {}},
                   {kBulkIn, 0x02, 512, 0, {}},
                   {kInterruptIn, 0x03, 8, 8, {}}}}}}};
  d.strings = {"usbnet", "USBTMC Simulated Supply", "TMC0001"};
  return std::make_shared<UsbtmcDevice>(std::move(executor), std::move(d));
}

}  // namespace usbnet::agent::sim
