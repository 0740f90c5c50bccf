#include "agent/sim/sim_device.h"

#include <libusb.h>

#include <algorithm>
#include <array>
#include <cstring>

#include "common/log.h"
#include "common/loopback_device.h"

namespace usbnet::agent::sim {

namespace asio = boost::asio;
using wire::UrbStatus;
using namespace wire::error_code;

namespace {

constexpr std::uint16_t kLanguage = 0x0409;

// Standard request codes and descriptor types (USB 2.0 chapter 9).
constexpr std::uint8_t kGetStatus = 0x00, kClearFeature = 0x01, kSetFeature = 0x03,
                       kGetDescriptor = 0x06, kGetConfiguration = 0x08, kSetConfiguration = 0x09,
                       kGetInterface = 0x0a, kSetInterface = 0x0b;
constexpr std::uint16_t kEndpointHalt = 0, kDeviceRemoteWakeup = 1;

std::uint8_t transfer_type_of(std::uint8_t attributes) {
  switch (attributes & 3) {
    case 1:
      return LIBUSB_TRANSFER_TYPE_ISOCHRONOUS;
    case 2:
      return LIBUSB_TRANSFER_TYPE_BULK;
    case 3:
      return LIBUSB_TRANSFER_TYPE_INTERRUPT;
  }
  return LIBUSB_TRANSFER_TYPE_CONTROL;
}

std::uint8_t transfer_type_of(wire::UrbType type) {
  switch (type) {
    case wire::UrbType::Control:
      return LIBUSB_TRANSFER_TYPE_CONTROL;
    case wire::UrbType::Bulk:
      return LIBUSB_TRANSFER_TYPE_BULK;
    case wire::UrbType::Interrupt:
      return LIBUSB_TRANSFER_TYPE_INTERRUPT;
    case wire::UrbType::Iso:
      return LIBUSB_TRANSFER_TYPE_ISOCHRONOUS;
  }
  return LIBUSB_TRANSFER_TYPE_CONTROL;
}

// The pattern's longest run served without a copy.
constexpr std::size_t kPatternRun = 1u << 20;

// One period of the pattern, repeated so that any run of up to kPatternRun bytes starts at any
// phase.
const std::vector<std::uint8_t>& pattern_table() {
  static const std::vector<std::uint8_t> table = [] {
    std::vector<std::uint8_t> t(loopback_device::kPatternPeriod + kPatternRun);
    for (std::size_t i = 0; i < t.size(); ++i) t[i] = loopback_device::pattern_byte(i);
    return t;
  }();
  return table;
}

}  // namespace

void fill_pattern(std::uint8_t* data, std::size_t n, std::uint64_t offset) {
  const auto& table = pattern_table();
  while (n > 0) {
    const std::size_t chunk = std::min(n, kPatternRun);
    std::memcpy(data, table.data() + offset % loopback_device::kPatternPeriod, chunk);
    data += chunk;
    offset += chunk;
    n -= chunk;
  }
}

wire::ByteView pattern_view(std::size_t n, std::uint64_t offset) {
  if (n > kPatternRun) return {};
  return wire::ByteView(pattern_table()).subspan(offset % loopback_device::kPatternPeriod, n);
}

std::size_t count_pattern_errors(const std::uint8_t* data, std::size_t n, std::uint64_t offset) {
  const auto& table = pattern_table();
  std::size_t errors = 0;
  while (n > 0) {
    const std::size_t chunk = std::min(n, kPatternRun);
    const std::uint8_t* expected = table.data() + offset % loopback_device::kPatternPeriod;
    if (std::memcmp(data, expected, chunk) != 0) {
      // Eight bytes at a time: each differing byte leaves a nonzero byte in the XOR.
      std::size_t i = 0;
      for (; i + 8 <= chunk; i += 8) {
        std::uint64_t a, b;
        std::memcpy(&a, data + i, 8);
        std::memcpy(&b, expected + i, 8);
        std::uint64_t x = a ^ b;
        x |= x >> 4;
        x |= x >> 2;
        x |= x >> 1;
        errors += static_cast<std::size_t>(__builtin_popcountll(x & 0x0101010101010101ull));
      }
      for (; i < chunk; ++i) errors += data[i] != expected[i];
    }
    data += chunk;
    offset += chunk;
    n -= chunk;
  }
  return errors;
}

SimDevice::SimDevice(asio::any_io_executor executor, DeviceDescription description)
    : executor_(std::move(executor)), description_(std::move(description)) {
  for (const ConfigSpec& c : description_.configs) raw_configs_.push_back(config_descriptor(c));
  // As the Linux kernel leaves a device it enumerated: configured, every alt setting 0.
  select_configuration(description_.configs.empty() ? 0 : description_.configs.front().value);
}

SimDevice::~SimDevice() = default;

void SimDevice::set_location(std::uint8_t bus, std::uint8_t address, std::uint8_t port) {
  bus_ = bus;
  address_ = address;
  port_ = port;
}

wire::DeviceInfo SimDevice::info() const {
  wire::DeviceInfo info;
  info.bus_number = bus_;
  info.device_address = address_;
  info.speed = description_.speed;
  info.active_config = static_cast<std::uint8_t>(configuration_);
  if (port_ != 0) info.port_numbers = {port_};  // port 0: a root hub, at the top of its bus
  const Bytes device =
      device_descriptor(description_.device, static_cast<std::uint8_t>(raw_configs_.size()));
  std::copy(device.begin(), device.end(), info.device_descriptor.begin());
  info.configs = raw_configs_;
  info.bos = description_.bos;
  info.strings.push_back({0, 0, language_table(kLanguage)});
  for (std::size_t i = 0; i < description_.strings.size(); ++i) {
    info.strings.push_back(
        {static_cast<std::uint8_t>(i + 1), kLanguage, string_descriptor(description_.strings[i])});
  }
  return info;
}

Expected<std::unique_ptr<DeviceHandle>, std::int32_t> SimDevice::open() {
  if (unplugged_) return Unexpected{kNoDevice};
  auto handle = std::make_unique<SimHandle>(shared_from_this());
  handles_.insert(handle.get());
  return std::unique_ptr<DeviceHandle>(std::move(handle));
}

void SimDevice::unplug() {
  if (unplugged_) return;
  unplugged_ = true;
  end_all(UrbStatus::NoDevice);
}

void SimDevice::request_detach(std::chrono::milliseconds delay) {
  if (detach_handler_) detach_handler_(delay);
}

// ---- configuration --------------------------------------------------------------------------

const ConfigSpec* SimDevice::active_config() const {
  for (const ConfigSpec& c : description_.configs) {
    if (c.value == configuration_ && configuration_ != 0) return &c;
  }
  return nullptr;
}

bool SimDevice::has_interface(std::uint8_t interface_number) const {
  const ConfigSpec* config = active_config();
  if (!config) return false;
  return std::any_of(
      config->alt_settings.begin(), config->alt_settings.end(),
      [&](const AltSettingSpec& a) { return a.interface_number == interface_number; });
}

std::uint8_t SimDevice::alt_setting(std::uint8_t interface_number) const {
  auto it = alt_settings_.find(interface_number);
  return it == alt_settings_.end() ? 0 : it->second;
}

void SimDevice::select_configuration(int value) {
  configuration_ = value < 0 ? 0 : value;
  alt_settings_.clear();
  if (const ConfigSpec* config = active_config()) {
    for (const auto& alt : config->alt_settings) alt_settings_[alt.interface_number] = 0;
  }
  rebuild_endpoints();
  restart();
}

// The endpoints of the active configuration and alternate settings; transfers waiting on
// endpoints that go away end with an error, as the kernel kills their URBs.
void SimDevice::rebuild_endpoints() {
  std::map<std::uint8_t, Endpoint> next;
  next[0] = Endpoint{0, LIBUSB_TRANSFER_TYPE_CONTROL, description_.device.max_packet_size0};
  if (const ConfigSpec* config = active_config()) {
    for (const auto& alt : config->alt_settings) {
      if (alt.alternate != alt_setting(alt.interface_number)) continue;
      for (const auto& ep : alt.endpoints) {
        next[ep.address] =
            Endpoint{ep.address, transfer_type_of(ep.attributes), ep.max_packet_size};
      }
    }
  }
  for (auto& [address, ep] : endpoints_) {
    auto kept = next.find(address);
    if (kept != next.end() && kept->second.type == ep.type) {
      kept->second.queue = std::move(ep.queue);  // halts are cleared by a new setting
    }
  }
  std::vector<std::unique_ptr<Pending>> orphans;
  for (auto& [address, ep] : endpoints_) {
    for (auto& p : ep.queue) orphans.push_back(std::move(p));
  }
  endpoints_ = std::move(next);
  for (auto& p : orphans) {
    if (!p) continue;
    p->transfer->status = UrbStatus::Error;
    p->transfer->actual_length = 0;
    p->transfer->iso_results.assign(p->transfer->iso_lengths.size(), {UrbStatus::Error, 0});
    p->done(p->transfer);
  }
}

SimDevice::Endpoint* SimDevice::endpoint(std::uint8_t address) {
  auto it = endpoints_.find(address);
  return it == endpoints_.end() ? nullptr : &it->second;
}

// ---- transfers ----------------------------------------------------------------------------

void SimDevice::submit(SimHandle& owner, TransferPtr transfer, TransferDone done) {
  auto fail = [&](UrbStatus status) {
    transfer->status = status;
    transfer->actual_length = 0;
    transfer->iso_results.assign(transfer->iso_lengths.size(), {status, 0});
    done(transfer);
  };
  if (unplugged_) return fail(UrbStatus::NoDevice);
  const std::uint8_t address =
      transfer->type == wire::UrbType::Control ? std::uint8_t{0} : transfer->endpoint;
  Endpoint* ep = endpoint(address);
  // The kernel refuses a URB for an endpoint the device does not have now, or of another type.
  if (!ep || ep->type != transfer_type_of(transfer->type)) return fail(UrbStatus::Error);
  auto pending = std::make_unique<Pending>();
  const std::uint64_t serial = next_serial_++;
  pending->serial = serial;
  pending->transfer = std::move(transfer);
  pending->done = std::move(done);
  pending->owner = &owner;
  const std::uint32_t timeout_ms = pending->transfer->timeout_ms;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  ep->queue.push_back(std::move(pending));
  pump(address);
  // Most transfers complete at once; only one still waiting needs its timeout timer.
  if (timeout_ms > 0) arm_timeout(address, serial, deadline);
}

void SimDevice::arm_timeout(std::uint8_t address, std::uint64_t serial,
                            std::chrono::steady_clock::time_point deadline) {
  Endpoint* ep = endpoint(address);
  if (!ep) return;
  auto it = std::find_if(ep->queue.begin(), ep->queue.end(),
                         [serial](const auto& p) { return p->serial == serial; });
  if (it == ep->queue.end()) return;
  Pending& pending = **it;
  pending.timeout = std::make_unique<asio::steady_timer>(executor_);
  pending.timeout->expires_at(deadline);
  pending.timeout->async_wait(
      [weak = weak_from_this(), address, serial](const boost::system::error_code& ec) {
        auto self = weak.lock();
        if (ec || !self) return;
        Endpoint* ep = self->endpoint(address);
        if (!ep) return;
        for (auto& p : ep->queue) {
          if (p->serial == serial) return self->complete(*ep, *p, UrbStatus::TimedOut, 0);
        }
      });
}

void SimDevice::complete(Endpoint& ep, Pending& pending, UrbStatus status,
                         std::uint32_t actual_length, std::vector<wire::IsoPacketResult> iso) {
  auto it = std::find_if(ep.queue.begin(), ep.queue.end(),
                         [&](const auto& p) { return p.get() == &pending; });
  if (it == ep.queue.end()) return;
  std::unique_ptr<Pending> done = std::move(*it);
  ep.queue.erase(it);
  if (done->timeout) done->timeout->cancel();
  if (done->delay) done->delay->cancel();
  Transfer& t = *done->transfer;
  t.status = status;
  t.actual_length = actual_length;
  if (!t.iso_lengths.empty() && iso.size() != t.iso_lengths.size()) {
    iso.assign(t.iso_lengths.size(), {status, 0});
  }
  t.iso_results = std::move(iso);
  const std::uint8_t address = ep.address;
  done->done(done->transfer);
  pump(address);
}

void SimDevice::pump(std::uint8_t address) {
  if (pumping_.test(address)) {
    pump_again_.set(address);
    return;
  }
  pumping_.set(address);
  for (;;) {
    pump_again_.reset(address);
    Endpoint* ep = endpoint(address);
    if (!ep || ep->queue.empty()) break;
    Pending& head = *ep->queue.front();
    const std::uint64_t serial = head.serial;
    if (ep->halted) {
      complete(*ep, head, UrbStatus::Stall, 0);
      continue;
    }
    if (address == 0) {
      serve_control(head);
    } else {
      serve(*ep, head);
    }
    ep = endpoint(address);  // a new configuration or setting may have rebuilt the endpoints
    const bool moved_on = !ep || ep->queue.empty() || ep->queue.front()->serial != serial;
    if (!moved_on && !pump_again_.test(address)) break;
  }
  pumping_.reset(address);
}

void SimDevice::cancel(const TransferPtr& transfer) {
  for (auto& [address, ep] : endpoints_) {
    for (auto& p : ep.queue) {
      if (p->transfer == transfer) return complete(ep, *p, UrbStatus::Cancelled, 0);
    }
  }
}

void SimDevice::end_all(UrbStatus status, const SimHandle* owner) {
  std::vector<std::pair<std::uint8_t, Pending*>> victims;
  for (auto& [address, ep] : endpoints_) {
    for (auto& p : ep.queue) {
      if (!owner || p->owner == owner) victims.emplace_back(address, p.get());
    }
  }
  for (auto [address, p] : victims) {
    if (Endpoint* ep = endpoint(address)) complete(*ep, *p, status, 0);
  }
}

void SimDevice::cancel_all_of(const SimHandle& owner) { end_all(UrbStatus::Cancelled, &owner); }

std::uint32_t SimDevice::packet_rules(std::size_t available, std::size_t room,
                                      std::uint16_t max_packet, UrbStatus& status,
                                      std::size_t& consumed) {
  status = UrbStatus::Completed;
  if (available <= room) {  // ends with a short packet (or a zero-length one)
    consumed = available;
    return static_cast<std::uint32_t>(available);
  }
  if (room % max_packet == 0) {  // the buffer fills with whole packets; the rest waits
    consumed = room;
    return static_cast<std::uint32_t>(room);
  }
  // The last packet does not fit: babble. The whole packets arrived; the data is lost.
  status = UrbStatus::Overflow;
  consumed = available;
  return static_cast<std::uint32_t>(room / max_packet * max_packet);
}

// ---- control ------------------------------------------------------------------------------

void SimDevice::serve_control(Pending& head) {
  if (head.delay) return;  // answering later
  Transfer& t = *head.transfer;
  wire::SetupPacket setup;
  std::memcpy(&setup, t.setup.data(), sizeof setup);
  const bool in = (setup.bmRequestType & 0x80) != 0;
  const std::span<const std::uint8_t> out =
      in ? std::span<const std::uint8_t>{} : std::span<const std::uint8_t>(t.buffer);
  std::optional<ControlOutcome> outcome;
  if ((setup.bmRequestType & 0x60) == 0) outcome = standard_control(setup, out);
  if (!outcome) outcome = function_control(setup, out);
  // Endpoint 0 is looked up afresh: a SET_CONFIGURATION just served rebuilt the endpoints.
  auto finish = [this](Pending& p, const ControlOutcome& o) {
    Transfer& tr = *p.transfer;
    Endpoint& ep0 = *endpoint(0);
    if (tr.is_in()) {
      const std::size_t n = std::min(o.in.size(), tr.buffer.size());
      std::copy_n(o.in.begin(), n, tr.buffer.begin());
      complete(ep0, p, UrbStatus::Completed, static_cast<std::uint32_t>(n));
    } else {
      complete(ep0, p, UrbStatus::Completed, static_cast<std::uint32_t>(tr.buffer.size()));
    }
  };
  switch (outcome->kind) {
    case ControlOutcome::Kind::Stall:
      return complete(*endpoint(0), head, UrbStatus::Stall, 0);
    case ControlOutcome::Kind::Done:
      return finish(head, *outcome);
    case ControlOutcome::Kind::Later: {
      head.delay = std::make_unique<asio::steady_timer>(executor_);
      head.delay->expires_after(outcome->delay);
      head.delay->async_wait([weak = weak_from_this(), serial = head.serial, finish,
                              o = *outcome](const boost::system::error_code& ec) {
        auto self = weak.lock();
        if (ec || !self) return;
        Endpoint* ep0 = self->endpoint(0);
        if (ep0 && !ep0->queue.empty() && ep0->queue.front()->serial == serial) {
          finish(*ep0->queue.front(), o);
        }
      });
      return;
    }
  }
}

std::optional<Bytes> SimDevice::descriptor(std::uint8_t type, std::uint8_t index,
                                           std::uint8_t recipient, std::uint16_t w_index) const {
  if (recipient == LIBUSB_RECIPIENT_INTERFACE) {
    auto it = description_.interface_descriptors.find({static_cast<std::uint8_t>(w_index), type});
    if (it == description_.interface_descriptors.end()) return std::nullopt;
    return it->second;
  }
  if (recipient != LIBUSB_RECIPIENT_DEVICE) return std::nullopt;
  switch (type) {
    case LIBUSB_DT_DEVICE:
      return device_descriptor(description_.device, static_cast<std::uint8_t>(raw_configs_.size()));
    case LIBUSB_DT_CONFIG:
      if (index >= raw_configs_.size()) return std::nullopt;
      return raw_configs_[index];
    case LIBUSB_DT_STRING:
      if (index == 0) return language_table(kLanguage);
      if (index > description_.strings.size()) return std::nullopt;
      return string_descriptor(description_.strings[index - 1]);
    case LIBUSB_DT_BOS:
      if (description_.bos.empty()) return std::nullopt;
      return description_.bos;
    case 0x06:  // device qualifier: only a high-speed device has one
      if (description_.speed != LIBUSB_SPEED_HIGH) return std::nullopt;
      return Bytes{10,
                   0x06,
                   static_cast<std::uint8_t>(description_.device.bcd_usb),
                   static_cast<std::uint8_t>(description_.device.bcd_usb >> 8),
                   description_.device.device_class,
                   0,
                   0,
                   description_.device.max_packet_size0,
                   static_cast<std::uint8_t>(raw_configs_.size()),
                   0};
  }
  return std::nullopt;
}

std::optional<ControlOutcome> SimDevice::standard_control(const wire::SetupPacket& setup,
                                                          std::span<const std::uint8_t>) {
  const std::uint8_t recipient = setup.bmRequestType & 0x1f;
  const std::uint16_t value = setup.wValue.get();
  const std::uint16_t index = setup.wIndex.get();
  const ControlOutcome stall = ControlOutcome::stall();
  switch (setup.bRequest) {
    case kGetStatus: {
      if (recipient == LIBUSB_RECIPIENT_DEVICE) {
        const ConfigSpec* config = active_config();
        const std::uint8_t self_powered = config && (config->attributes & 0x40) ? 1 : 0;
        return ControlOutcome::done(
            {static_cast<std::uint8_t>(self_powered | (remote_wakeup_ ? 2 : 0)), 0});
      }
      if (recipient == LIBUSB_RECIPIENT_INTERFACE) {
        return has_interface(static_cast<std::uint8_t>(index)) ? ControlOutcome::done({0, 0})
                                                               : stall;
      }
      if (recipient == LIBUSB_RECIPIENT_ENDPOINT) {
        const Endpoint* ep = endpoint(static_cast<std::uint8_t>(index));
        if (!ep) return stall;
        return ControlOutcome::done({static_cast<std::uint8_t>(ep->halted ? 1 : 0), 0});
      }
      return stall;
    }
    case kClearFeature:
    case kSetFeature: {
      const bool set = setup.bRequest == kSetFeature;
      if (recipient == LIBUSB_RECIPIENT_ENDPOINT && value == kEndpointHalt) {
        Endpoint* ep = endpoint(static_cast<std::uint8_t>(index));
        if (!ep || ep->address == 0) return stall;
        ep->halted = set;
        return ControlOutcome::done();
      }
      if (recipient == LIBUSB_RECIPIENT_DEVICE && value == kDeviceRemoteWakeup) {
        remote_wakeup_ = set;
        return ControlOutcome::done();
      }
      return stall;
    }
    case kGetDescriptor: {
      if (!(setup.bmRequestType & 0x80)) return stall;
      auto d = descriptor(static_cast<std::uint8_t>(value >> 8), static_cast<std::uint8_t>(value),
                          recipient, index);
      return d ? ControlOutcome::done(std::move(*d)) : stall;
    }
    case kGetConfiguration:
      return ControlOutcome::done({static_cast<std::uint8_t>(configuration_)});
    case kSetConfiguration: {
      if (value != 0 && std::none_of(description_.configs.begin(), description_.configs.end(),
                                     [&](const ConfigSpec& c) { return c.value == value; })) {
        return stall;
      }
      select_configuration(value);
      return ControlOutcome::done();
    }
    case kGetInterface:
      if (!has_interface(static_cast<std::uint8_t>(index))) return stall;
      return ControlOutcome::done({alt_setting(static_cast<std::uint8_t>(index))});
    case kSetInterface: {
      const ConfigSpec* config = active_config();
      if (!config) return stall;
      const bool exists = std::any_of(config->alt_settings.begin(), config->alt_settings.end(),
                                      [&](const AltSettingSpec& a) {
                                        return a.interface_number == index && a.alternate == value;
                                      });
      if (!exists) return stall;
      alt_settings_[static_cast<std::uint8_t>(index)] = static_cast<std::uint8_t>(value);
      rebuild_endpoints();
      restart();
      return ControlOutcome::done();
    }
  }
  return stall;  // SET_ADDRESS, SET_DESCRIPTOR, SYNCH_FRAME and anything unknown
}

// ---- device requests (from the agent's sessions) --------------------------------------------

std::int32_t SimDevice::device_request_result(const DeviceRequest& request, std::uint32_t& value) {
  if (unplugged_) return kNoDevice;
  return std::visit(
      [&](const auto& m) -> std::int32_t {
        using M = std::decay_t<decltype(m)>;
        if constexpr (std::is_same_v<M, wire::SetConfiguration>) {
          if (m.configuration > 0 &&
              std::none_of(description_.configs.begin(), description_.configs.end(),
                           [&](const ConfigSpec& c) { return c.value == m.configuration; })) {
            return kNotFound;
          }
          select_configuration(m.configuration);
          return 0;
        } else if constexpr (std::is_same_v<M, wire::GetConfiguration>) {
          value = static_cast<std::uint32_t>(configuration_);
          return 0;
        } else if constexpr (std::is_same_v<M, wire::ClaimInterface>) {
          return has_interface(m.interface_number) ? 0 : kNotFound;
        } else if constexpr (std::is_same_v<M, wire::ReleaseInterface>) {
          return 0;
        } else if constexpr (std::is_same_v<M, wire::SetAltSetting>) {
          const ConfigSpec* config = active_config();
          const bool exists =
              config && std::any_of(config->alt_settings.begin(), config->alt_settings.end(),
                                    [&](const AltSettingSpec& a) {
                                      return a.interface_number == m.interface_number &&
                                             a.alternate == m.alt_setting;
                                    });
          if (!exists) return kNotFound;
          alt_settings_[m.interface_number] = m.alt_setting;
          rebuild_endpoints();
          restart();
          return 0;
        } else if constexpr (std::is_same_v<M, wire::ClearHalt>) {
          Endpoint* ep = endpoint(m.endpoint);
          if (!ep || ep->address == 0) return kNotFound;
          ep->halted = false;
          return 0;
        } else if constexpr (std::is_same_v<M, wire::ResetDevice>) {
          // Linux restores the configuration and alternate settings after a reset.
          end_all(UrbStatus::Error);
          for (auto& [address, ep] : endpoints_) ep.halted = false;
          bus_reset();
          return 0;
        } else {
          static_assert(std::is_same_v<M, wire::KernelDriver>);
          if (!has_interface(m.interface_number)) return kNotFound;
          // No kernel driver ever binds a simulated device.
          if (m.op == wire::KernelDriverOp::Query) {
            value = 0;
            return 0;
          }
          return kNotFound;
        }
      },
      request);
}

void SimDevice::request(const DeviceRequest& request, RequestDone done) {
  std::uint32_t value = 0;
  const std::int32_t result = device_request_result(request, value);
  done(result, value);
}

}  // namespace usbnet::agent::sim
