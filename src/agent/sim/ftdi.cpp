// `ftdi`: an FT232R-style USB serial adapter with a loopback plug on its serial side (TXD to
// RXD, RTS to CTS, DTR to DSR and DCD): what the host writes comes back. FTDI's vendor
// requests as libftdi and Linux's ftdi_sio send them, and the chip's IN framing: every bulk IN
// packet starts with the two modem status bytes, and a packet that is not full waits for the
// latency timer.
#include <algorithm>
#include <deque>

#include "agent/sim/devices.h"
#include "common/log.h"

namespace usbnet::agent::sim {

namespace {

using wire::UrbStatus;
using Clock = std::chrono::steady_clock;

constexpr std::uint8_t kReset = 0x00, kModemCtrl = 0x01, kSetFlowCtrl = 0x02, kSetBaudRate = 0x03,
                       kSetData = 0x04, kPollModemStatus = 0x05, kSetEventChar = 0x06,
                       kSetErrorChar = 0x07, kSetLatencyTimer = 0x09, kGetLatencyTimer = 0x0a,
                       kSetBitmode = 0x0b, kReadPins = 0x0c, kReadEeprom = 0x90;
constexpr std::uint8_t kVendorOut = 0x40, kVendorIn = 0xc0;  // recipient device
constexpr std::uint8_t kInEndpoint = 0x81, kOutEndpoint = 0x02;
constexpr std::uint16_t kPacket = 64;  // full speed bulk
constexpr std::size_t kStatusBytes = 2;
// Bytes that came back through the plug and wait for the host; past this the OUT endpoint
// NAKs (its transfers wait) until the host reads.
constexpr std::size_t kEchoLimit = 64 * 1024;
constexpr std::uint8_t kDefaultLatency = 16;  // ms
constexpr std::uint16_t kFlowRtsCts = 0x01, kFlowDtrDsr = 0x02, kFlowXonXoff = 0x04;
constexpr std::size_t kEepromWords = 64;  // FT232R's internal EEPROM: 128 bytes

constexpr std::uint16_t kVendor = 0x1209, kProduct = 0x0007, kBcdDevice = 0x0600;
const std::string kManufacturer = "usbnet", kProductName = "FT232R USB UART", kSerial = "FT000001";

// The EEPROM as FTDI lays it out for the FT232R (the fields libftdi's ftdi_eeprom_decode
// reads): IDs, power, the strings as string descriptors from byte 0x18 on, and the checksum in
// the last word.
std::array<std::uint16_t, kEepromWords> eeprom_words() {
  Bytes b(kEepromWords * 2, 0);
  auto put16 = [&](std::size_t at, std::uint16_t v) {
    b[at] = static_cast<std::uint8_t>(v);
    b[at + 1] = static_cast<std::uint8_t>(v >> 8);
  };
  b[0x01] = 0x40;  // libftdi checks this bit of an FT232R's EEPROM (the endpoint size)
  put16(0x02, kVendor);
  put16(0x04, kProduct);
  put16(0x06, kBcdDevice);
  b[0x08] = 0xa0;  // bus powered, remote wakeup
  b[0x09] = 45;    // 90 mA
  b[0x0a] = 0x08;  // use the serial number string
  put16(0x0c, 0x0200);
  // The FT232R's factory CBUS functions: TXLED, RXLED, TXDEN, PWREN, SLEEP.
  b[0x14] = 0x23;
  b[0x15] = 0x10;
  b[0x16] = 0x05;
  std::size_t at = 0x18;
  for (const auto& [field, text] : {std::pair{0x0e, &kManufacturer}, std::pair{0x10, &kProductName},
                                    std::pair{0x12, &kSerial}}) {
    const Bytes s = string_descriptor(*text);
    b[static_cast<std::size_t>(field)] = static_cast<std::uint8_t>(0x80 | at);
    b[static_cast<std::size_t>(field) + 1] = static_cast<std::uint8_t>(s.size());
    std::copy(s.begin(), s.end(), b.begin() + static_cast<std::ptrdiff_t>(at));
    at += s.size();
  }
  std::array<std::uint16_t, kEepromWords> words{};
  std::uint16_t checksum = 0xaaaa;
  for (std::size_t i = 0; i < kEepromWords; ++i) {
    words[i] = static_cast<std::uint16_t>(b[2 * i] | b[2 * i + 1] << 8);
    if (i + 1 < kEepromWords) {
      checksum = static_cast<std::uint16_t>(checksum ^ words[i]);
      checksum = static_cast<std::uint16_t>(checksum << 1 | checksum >> 15);
    }
  }
  words[kEepromWords - 1] = checksum;
  return words;
}

// FT232R/FT232BM baud rate divisors (FTDI AN232B-05): a 14-bit integer divisor of 3 MHz in
// wValue[13:0] and an eighths fraction coded in {wIndex[0], wValue[15:14]}; 0 means 3 MBd and
// 1 means 2 MBd.
std::uint32_t baud_rate(std::uint16_t value, std::uint16_t index) {
  static constexpr std::uint32_t eighths[8] = {0, 4, 2, 1, 3, 5, 6, 7};
  const std::uint32_t integer = value & 0x3fff;
  const std::uint32_t code = (value >> 14) | ((index & 1u) << 2);
  if (integer == 0) return 3000000;
  if (integer == 1) return 2000000;
  const std::uint32_t divisor = integer * 8 + eighths[code];
  return (24000000 + divisor / 2) / divisor;
}

class FtdiDevice final : public SimDevice {
 public:
  FtdiDevice(boost::asio::any_io_executor executor, DeviceDescription d)
      : SimDevice(executor, std::move(d)), latency_timer_(executor), eeprom_(eeprom_words()) {}

 private:
  // Power-on defaults, as after a USB reset.
  void restart() override {
    echo_.clear();
    baud_ = 9600;
    line_ = 0x0008;  // 8 data bits, no parity, 1 stop bit, no break
    flow_ = 0;
    dtr_ = rts_ = false;
    latency_ = kDefaultLatency;
    event_char_ = 0;
    error_char_ = 0;
    last_flush_ = Clock::now();
  }

  bool breaking() const { return (line_ & 0x4000) != 0; }
  // The transmitter sends when the line is not in break and, with hardware flow control, when
  // the other side allows it (CTS is the looped RTS, DSR the looped DTR).
  bool transmitting() const {
    if (breaking()) return false;
    if ((flow_ & kFlowRtsCts) && !rts_) return false;
    if ((flow_ & kFlowDtrDsr) && !dtr_) return false;
    return true;
  }

  // Byte 0: B0 always 1, CTS (B4), DSR (B5), RI (B6), DCD (B7). Byte 1, the line status: THRE
  // and TEMT (the transmitter is empty: bytes go straight through the plug), BI in a break,
  // DR when received bytes wait.
  std::array<std::uint8_t, kStatusBytes> modem_status() const {
    std::uint8_t modem = 0x01;
    if (rts_) modem |= 0x10;
    if (dtr_) modem |= 0x20 | 0x80;
    std::uint8_t line = 0x60;
    if (!echo_.empty()) line |= 0x01;
    if (breaking()) line |= 0x10;
    return {modem, line};
  }

  void serve(Endpoint& ep, Pending& head) override {
    Transfer& t = *head.transfer;
    if (ep.address == kOutEndpoint) {
      if (!transmitting()) return;  // held: NAK until the line may send
      if (!echo_.empty() && echo_.size() + t.buffer.size() > kEchoLimit) return;
      echo_.insert(echo_.end(), t.buffer.begin(), t.buffer.end());
      complete(ep, head, UrbStatus::Completed, static_cast<std::uint32_t>(t.buffer.size()));
      return pump(kInEndpoint);
    }
    if (ep.address != kInEndpoint) return;
    const std::size_t room = t.buffer.size();
    const std::size_t payload = ep.max_packet - kStatusBytes;
    // The chip sends full packets as soon as it has them; what does not fill a packet goes
    // when the latency timer expires, or at once after the event character.
    const bool fills = room % ep.max_packet == 0 && echo_.size() >= room / ep.max_packet * payload;
    const bool event = (event_char_ & 0x100) != 0 &&
                       std::find(echo_.begin(), echo_.end(),
                                 static_cast<std::uint8_t>(event_char_)) != echo_.end();
    const auto due = last_flush_ + std::chrono::milliseconds(latency_);
    if (!fills && !event && Clock::now() < due) return wait_until(due);
    const auto [status, length] = frame(t, ep.max_packet);
    last_flush_ = Clock::now();
    complete(ep, head, status, length);
    pump(kOutEndpoint);  // room for more echo
  }

  // Packets of status bytes and data into the transfer, until it is full or a short packet
  // ends it. A packet larger than what is left of the buffer is babble: OVERFLOW, its data
  // lost.
  std::pair<UrbStatus, std::uint32_t> frame(Transfer& t, std::uint16_t max_packet) {
    const std::size_t room = t.buffer.size();
    std::size_t written = 0;
    for (;;) {
      const std::size_t left = room - written;
      if (left == 0) return {UrbStatus::Completed, static_cast<std::uint32_t>(written)};
      const auto status = modem_status();  // as the packet leaves, before its data is taken
      const std::size_t n = std::min<std::size_t>(max_packet - kStatusBytes, echo_.size());
      const auto data_end = echo_.begin() + static_cast<std::ptrdiff_t>(n);
      if (kStatusBytes + n > left) {
        echo_.erase(echo_.begin(), data_end);
        return {UrbStatus::Overflow, static_cast<std::uint32_t>(written)};
      }
      auto at = t.buffer.begin() + static_cast<std::ptrdiff_t>(written);
      at = std::copy(status.begin(), status.end(), at);
      std::copy(echo_.begin(), data_end, at);
      echo_.erase(echo_.begin(), data_end);
      written += kStatusBytes + n;
      if (kStatusBytes + n < max_packet) {
        return {UrbStatus::Completed, static_cast<std::uint32_t>(written)};
      }
    }
  }

  // Serves the IN endpoint again at `due` (sooner if the latency timer was shortened).
  void wait_until(Clock::time_point due) {
    if (timing_ && armed_for_ <= due) return;
    timing_ = true;
    armed_for_ = due;
    latency_timer_.expires_at(due);  // a wait already armed ends as aborted
    latency_timer_.async_wait([weak = weak_from_this(), this](const boost::system::error_code& ec) {
      if (ec || !weak.lock()) return;
      timing_ = false;
      pump(kInEndpoint);
    });
  }

  ControlOutcome function_control(const wire::SetupPacket& setup,
                                  std::span<const std::uint8_t>) override {
    const std::uint16_t value = setup.wValue.get();
    const std::uint16_t index = setup.wIndex.get();
    // The port: 1 (libftdi's INTERFACE_A) or 0, its other name on single-port chips.
    const bool port_ok = (index & 0xff) <= 1;
    if (setup.bmRequestType == kVendorOut) {
      switch (setup.bRequest) {
        case kReset:
          if (!port_ok || value > 2) break;
          // 1 empties the transmit buffer, always empty here; 0 and 2 the receive buffer.
          if (value != 1) echo_.clear();
          pump(kOutEndpoint);
          return ControlOutcome::done();
        case kModemCtrl:
          if (!port_ok) break;
          if (value & 0x0100) dtr_ = (value & 0x01) != 0;
          if (value & 0x0200) rts_ = (value & 0x02) != 0;
          pump(kOutEndpoint);
          return ControlOutcome::done();
        case kSetFlowCtrl: {
          const std::uint16_t mode = index >> 8;
          if (!port_ok ||
              (mode != 0 && mode != kFlowRtsCts && mode != kFlowDtrDsr && mode != kFlowXonXoff)) {
            break;
          }
          flow_ = mode;  // XON/XOFF characters (wValue) are kept but the plug never sends them
          pump(kOutEndpoint);
          return ControlOutcome::done();
        }
        case kSetBaudRate:
          if (index > 1) break;  // wIndex[0] is part of the divisor on this chip
          baud_ = baud_rate(value, index);
          log_line();
          return ControlOutcome::done();
        case kSetData: {
          const unsigned bits = value & 0xff, parity = (value >> 8) & 7, stop = (value >> 11) & 7;
          if (!port_ok || (bits != 7 && bits != 8) || parity > 4 || stop > 2) break;
          line_ = value;
          log_line();
          pump(kOutEndpoint);
          return ControlOutcome::done();
        }
        case kSetEventChar:
          if (!port_ok) break;
          event_char_ = value & 0x1ff;
          pump(kInEndpoint);
          return ControlOutcome::done();
        case kSetErrorChar:
          if (!port_ok) break;
          error_char_ = value & 0x1ff;  // no parity or framing errors ever happen in the plug
          return ControlOutcome::done();
        case kSetLatencyTimer:
          if (!port_ok || value == 0 || value > 255) break;
          latency_ = static_cast<std::uint8_t>(value);
          pump(kInEndpoint);
          return ControlOutcome::done();
        case kSetBitmode:
          // Only the serial mode; the bit-bang modes are not simulated.
          if (!port_ok || (value >> 8) != 0) break;
          return ControlOutcome::done();
      }
      return ControlOutcome::stall();  // EEPROM writes and erases too: it is read-only here
    }
    if (setup.bmRequestType == kVendorIn) {
      switch (setup.bRequest) {
        case kPollModemStatus: {
          if (!port_ok) break;
          const auto s = modem_status();
          return ControlOutcome::done({s[0], s[1]});
        }
        case kGetLatencyTimer:
          if (!port_ok) break;
          return ControlOutcome::done({latency_});
        case kReadPins: {
          if (!port_ok) break;
          // D0 TXD, D1 RXD (idle high, looped), D2 RTS#, D3 CTS#, D4 DTR#, D5 DSR#, D6 DCD#,
          // D7 RI#: the control lines are active low.
          std::uint8_t pins = 0x03 | 0x80;
          if (!rts_) pins |= 0x04 | 0x08;
          if (!dtr_) pins |= 0x10 | 0x20 | 0x40;
          return ControlOutcome::done({pins});
        }
        case kReadEeprom: {
          // A 64-word EEPROM: higher addresses wrap, as libftdi's size probe expects.
          const std::uint16_t word = eeprom_[index % kEepromWords];
          return ControlOutcome::done(
              {static_cast<std::uint8_t>(word), static_cast<std::uint8_t>(word >> 8)});
        }
      }
    }
    return ControlOutcome::stall();
  }

  void log_line() const {
    static constexpr const char* parities[] = {"N", "O", "E", "M", "S"};
    static constexpr const char* stops[] = {"1", "1.5", "2"};
    log::info("simulated ftdi: {} baud, {}{}{}", baud_, line_ & 0xff, parities[(line_ >> 8) & 7],
              stops[(line_ >> 11) & 7]);
  }

  std::deque<std::uint8_t> echo_;
  std::uint32_t baud_ = 9600;
  std::uint16_t line_ = 0x0008;
  std::uint16_t flow_ = 0;
  bool dtr_ = false, rts_ = false;
  std::uint8_t latency_ = kDefaultLatency;
  std::uint16_t event_char_ = 0, error_char_ = 0;  // bit 8: enabled
  Clock::time_point last_flush_ = Clock::now();
  boost::asio::steady_timer latency_timer_;
  bool timing_ = false;
  Clock::time_point armed_for_{};
  std::array<std::uint16_t, kEepromWords> eeprom_;
};

}  // namespace

std::shared_ptr<SimDevice> make_ftdi(boost::asio::any_io_executor executor) {
  DeviceDescription d;
  d.name = "ftdi";
  d.speed = 2;  // full
  d.device = {0x0200, 0, 8, kVendor, kProduct, kBcdDevice, 1, 2, 3};
  d.configs = {{1,
                0,
                0xa0,
                45,
                {{0,
                  0,
                  0xff,
                  0xff,
                  0xff,
                  2,
                  {},
                  {{kInEndpoint, 0x02, kPacket, 0, {}}, {kOutEndpoint, 0x02, kPacket, 0, {}}}}}}};
  d.strings = {kManufacturer, kProductName, kSerial};
  return std::make_shared<FtdiDevice>(std::move(executor), std::move(d));
}

}  // namespace usbnet::agent::sim
