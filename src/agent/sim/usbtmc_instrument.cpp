#include "agent/sim/usbtmc_instrument.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <cstdlib>
#include <vector>

namespace usbnet::agent::sim {

namespace {

constexpr std::size_t kErrorQueue = 16;
constexpr double kLoadOhms = 1000, kMaxVolts = 30;
constexpr std::uint8_t kOpc = 0x01, kQye = 0x04, kDde = 0x08, kExe = 0x10, kCme = 0x20;

const char* error_text(int code) {
  switch (code) {
    case -104:
      return "Data type error";
    case -108:
      return "Parameter not allowed";
    case -109:
      return "Missing parameter";
    case -113:
      return "Undefined header";
    case -222:
      return "Data out of range";
    case -223:
      return "Too much data";
    case -224:
      return "Illegal parameter value";
    case -350:
      return "Queue overflow";
    case -410:
      return "Query INTERRUPTED";
    case -420:
      return "Query UNTERMINATED";
  }
  return "Unknown error";
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

bool same_text(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::toupper(static_cast<unsigned char>(x)) ==
                  std::toupper(static_cast<unsigned char>(y));
         });
}

std::vector<std::string> split(std::string_view s, char by) {
  std::vector<std::string> out;
  std::size_t start = 0;
  for (;;) {
    const std::size_t at = s.find(by, start);
    out.emplace_back(s.substr(start, at == std::string_view::npos ? at : at - start));
    if (at == std::string_view::npos) return out;
    start = at + 1;
  }
}

// A SCPI header pattern such as "[SOURce:]VOLTage[:LEVel]": each node matches its short form
// (the capitals) or its long form, in any case; nodes in brackets may be left out.
struct Node {
  std::string name;
  bool optional;
};

std::vector<Node> pattern_nodes(std::string_view pattern) {
  std::vector<Node> nodes;
  std::string name;
  bool optional = false;
  for (char c : pattern) {
    if (c == '[') {
      optional = true;
    } else if (c == ']' || c == ':') {
      if (!name.empty()) nodes.push_back({name, optional});
      name.clear();
      if (c == ']') optional = false;
    } else {
      name += c;
    }
  }
  if (!name.empty()) nodes.push_back({name, optional});
  return nodes;
}

bool node_matches(const std::string& name, std::string_view text) {
  std::string short_form;
  for (char c : name) {
    if (std::isupper(static_cast<unsigned char>(c)) ||
        !std::isalpha(static_cast<unsigned char>(c))) {
      short_form += c;
    }
  }
  return same_text(text, short_form) || same_text(text, name);
}

bool matches(const std::vector<Node>& pattern, std::size_t p,
             const std::vector<std::string>& header, std::size_t h) {
  if (p == pattern.size()) return h == header.size();
  if (pattern[p].optional && matches(pattern, p + 1, header, h)) return true;
  return h < header.size() && node_matches(pattern[p].name, header[h]) &&
         matches(pattern, p + 1, header, h + 1);
}

bool matches(std::string_view pattern, const std::vector<std::string>& header) {
  return matches(pattern_nodes(pattern), 0, header, 0);
}

std::string real(double v) { return fmt::format("{:+.6E}", v); }

}  // namespace

void ScpiInstrument::reset() {
  voltage_ = 1.0;
  output_ = false;
}

void ScpiInstrument::error(int code) {
  if (code <= -100 && code > -200) event_status_ |= kCme;
  if (code <= -200 && code > -300) event_status_ |= kExe;
  if (code <= -300 && code > -400 && code != -350) event_status_ |= kDde;
  if (code <= -400 && code > -500) event_status_ |= kQye;
  if (errors_.size() >= kErrorQueue) {
    errors_.back() = {-350, error_text(-350)};
    return;
  }
  errors_.emplace_back(code, error_text(code));
}

std::uint8_t ScpiInstrument::status_byte(bool message_available) const {
  std::uint8_t stb = 0;
  if (!errors_.empty()) stb |= 0x04;
  if (message_available) stb |= 0x10;
  if (event_status_ & event_enable_) stb |= 0x20;
  if (stb & service_enable_ & 0xbf) stb |= 0x40;
  return stb;
}

bool ScpiInstrument::number(std::string_view text, double low, double high, double& value) {
  const std::string s(trim(text));
  char* end = nullptr;
  value = std::strtod(s.c_str(), &end);
  if (s.empty() || end != s.c_str() + s.size()) {
    error(-104);
    return false;
  }
  if (!(value >= low && value <= high)) {
    error(-222);
    return false;
  }
  return true;
}

std::string ScpiInstrument::execute(std::string_view message) {
  message = trim(message);
  std::string response;
  response_pending_ = false;
  std::vector<std::string> path;  // SCPI's current path: a unit without ':' is relative to it
  for (const std::string& text : split(message, ';')) {
    const std::string_view unit_text = trim(text);
    if (unit_text.empty()) continue;
    const std::size_t space = std::min(unit_text.find_first_of(" \t"), unit_text.size());
    const std::string_view header = unit_text.substr(0, space);
    const std::string_view parameters = trim(unit_text.substr(space));
    bool failed = false;
    std::string answer;
    if (header.front() == '*') {
      answer = unit(header, parameters, failed);
    } else {
      const bool absolute = header.front() == ':';
      std::vector<std::string> nodes = absolute ? std::vector<std::string>{} : path;
      for (std::string& n : split(header.substr(absolute ? 1 : 0), ':')) nodes.push_back(n);
      std::string full;
      for (const std::string& n : nodes) full += (full.empty() ? "" : ":") + n;
      answer = unit(full, parameters, failed);
      nodes.pop_back();
      path = nodes;
    }
    if (!answer.empty()) {
      response += (response.empty() ? "" : ";") + answer;
      response_pending_ = true;
    }
    if (failed) break;  // the rest of the message is not executed
  }
  return response.empty() ? response : response + "\n";
}

std::string ScpiInstrument::unit(std::string_view header, std::string_view parameters,
                                 bool& failed) {
  const bool query = !header.empty() && header.back() == '?';
  const std::vector<std::string> nodes =
      split(query ? header.substr(0, header.size() - 1) : header, ':');
  auto is = [&](std::string_view pattern, bool as_query) {
    return query == as_query && matches(pattern, nodes);
  };
  auto no_parameters = [&] {
    if (parameters.empty()) return true;
    error(-108);
    failed = true;
    return false;
  };
  auto one_parameter = [&] {
    if (!parameters.empty()) return true;
    error(-109);
    failed = true;
    return false;
  };
  auto register_value = [&](std::uint8_t& reg) {
    double v;
    if (!one_parameter()) return;
    if (!number(parameters, 0, 255, v)) {
      failed = true;
      return;
    }
    reg = static_cast<std::uint8_t>(v);
  };

  if (is("*IDN", true)) {
    if (no_parameters()) return "usbnet,USBTMC Simulated Supply,TMC0001,1.0";
  } else if (is("*RST", false)) {
    if (no_parameters()) reset();
  } else if (is("*CLS", false)) {
    if (no_parameters()) {
      errors_.clear();
      event_status_ = 0;
    }
  } else if (is("*OPC", false)) {
    if (no_parameters()) event_status_ |= kOpc;
  } else if (is("*OPC", true)) {
    if (no_parameters()) return "1";
  } else if (is("*WAI", false)) {
    no_parameters();
  } else if (is("*TST", true)) {
    if (no_parameters()) return "0";
  } else if (is("*ESR", true)) {
    if (no_parameters()) {
      const std::uint8_t esr = event_status_;
      event_status_ = 0;
      return std::to_string(esr);
    }
  } else if (is("*ESE", false)) {
    register_value(event_enable_);
  } else if (is("*ESE", true)) {
    if (no_parameters()) return std::to_string(event_enable_);
  } else if (is("*SRE", false)) {
    register_value(service_enable_);
  } else if (is("*SRE", true)) {
    if (no_parameters()) return std::to_string(service_enable_);
  } else if (is("*STB", true)) {
    if (no_parameters()) return std::to_string(status_byte(response_pending_));
  } else if (is("[SOURce:]VOLTage[:LEVel]", false)) {
    double v;
    if (one_parameter()) {
      if (number(parameters, 0, kMaxVolts, v)) {
        voltage_ = v;
      } else {
        failed = true;
      }
    }
  } else if (is("[SOURce:]VOLTage[:LEVel]", true)) {
    if (no_parameters()) return real(voltage_);
  } else if (is("OUTPut[:STATe]", false)) {
    if (one_parameter()) {
      if (same_text(parameters, "ON") || parameters == "1") {
        output_ = true;
      } else if (same_text(parameters, "OFF") || parameters == "0") {
        output_ = false;
      } else {
        error(-224);
        failed = true;
      }
    }
  } else if (is("OUTPut[:STATe]", true)) {
    if (no_parameters()) return output_ ? "1" : "0";
  } else if (is("MEASure:VOLTage[:DC]", true)) {
    if (no_parameters()) return real(output_ ? voltage_ : 0);
  } else if (is("MEASure:CURRent[:DC]", true)) {
    if (no_parameters()) return real(output_ ? voltage_ / kLoadOhms : 0);
  } else if (is("SYSTem:ERRor[:NEXT]", true)) {
    if (no_parameters()) {
      if (errors_.empty()) return "0,\"No error\"";
      const auto [code, text] = errors_.front();
      errors_.pop_front();
      return fmt::format("{},\"{}\"", code, text);
    }
  } else if (is("SYSTem:ERRor:COUNt", true)) {
    if (no_parameters()) return std::to_string(errors_.size());
  } else if (is("SYSTem:VERSion", true)) {
    if (no_parameters()) return "1999.0";
  } else {
    error(-113);
    failed = true;
  }
  return {};
}

}  // namespace usbnet::agent::sim
