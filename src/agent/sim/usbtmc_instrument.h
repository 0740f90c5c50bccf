// The instrument behind the simulated USBTMC interface (docs/DEVICES.md): an IEEE 488.2 / SCPI
// device, a bench power supply with a meter and a 1 kOhm load, that executes program messages
// and produces response messages. It knows nothing of USB: the USBTMC framing, the message
// exchange's errors it detects (-410, -420, -223) and the service requests are the transport's.
#pragma once

#include <cstdint>
#include <deque>
#include <string>
#include <string_view>
#include <utility>

namespace usbnet::agent::sim {

class ScpiInstrument {
 public:
  ScpiInstrument() { reset(); }

  // Executes one program message (its units separated by ';', without the terminator) and
  // returns the response message, "" for none, else its responses joined by ';' and ended
  // with '\n'.
  std::string execute(std::string_view message);

  // The status byte (IEEE 488.2 11.2): EAV (bit 2), MAV (bit 4, given by the transport,
  // which holds the output queue), ESB (bit 5) and MSS (bit 6).
  std::uint8_t status_byte(bool message_available) const;
  // Bits the service request enable register selects: nonzero asks for service.
  std::uint8_t service_request(bool message_available) const {
    return static_cast<std::uint8_t>(status_byte(message_available) & service_enable_ & 0xbf);
  }

  // An error in the error queue (SCPI's -350 "Queue overflow" replaces the last entry of a
  // full queue), and its bit in the standard event status register.
  void error(int code);
  // *RST: the power-on settings (not the status registers or the error queue).
  void reset();

 private:
  std::string unit(std::string_view header, std::string_view parameters, bool& failed);
  bool number(std::string_view text, double low, double high, double& value);

  std::deque<std::pair<int, const char*>> errors_;
  std::uint8_t event_status_ = 0x80;  // PON: the instrument has just been powered on
  std::uint8_t event_enable_ = 0, service_enable_ = 0;
  double voltage_ = 0;
  bool output_ = false;
  bool response_pending_ = false;  // the message being executed has produced a response
};

}  // namespace usbnet::agent::sim
