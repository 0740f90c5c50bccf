#include "agent/libusb_backend.h"

#include <libusb.h>

#include <atomic>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <cstring>
#include <map>
#include <optional>
#include <set>
#include <unordered_map>

#include "agent/device_presence.h"
#include "agent/usb_context.h"
#include "agent/usb_device_info.h"
#include "agent/usb_event_pump.h"
#include "agent/usb_rescan.h"
#include "agent/worker.h"
#include "common/log.h"

namespace usbnet::agent {

namespace asio = boost::asio;
using wire::UrbStatus;

namespace {

// A libusb result as the wire carries it: 0 (success) or a known error code; anything else is
// OTHER. (Success must stay 0: every device request's result goes through here.)
std::int32_t as_wire_error(int libusb_result) {
  if (libusb_result == 0 || wire::is_known_error_code(libusb_result)) return libusb_result;
  return wire::error_code::kOther;
}

class LibusbBackend;

class LibusbHandle final : public DeviceHandle {
 public:
  LibusbHandle(LibusbBackend& backend, UsbContextPtr context, libusb_device_handle* handle)
      : backend_(backend), context_(std::move(context)), handle_(handle) {}
  ~LibusbHandle() override;

  void request(const DeviceRequest& request, RequestDone done) override;
  void submit(TransferPtr transfer, TransferDone done) override;
  void cancel(const TransferPtr& transfer) override;
  void close(std::function<void()> done) override;

 private:
  // One transfer on its way through libusb.
  struct InFlight {
    LibusbHandle* owner = nullptr;
    TransferPtr transfer;
    TransferDone done;
    libusb_transfer* usb = nullptr;
    std::vector<std::uint8_t> control;       // setup packet + data stage, as libusb wants it
    std::optional<UrbStatus> submit_failed;  // libusb refused it: never reached the device
  };
  static void LIBUSB_CALL on_transfer_done(libusb_transfer* usb);
  void finish(InFlight* in_flight);  // io thread
  void maybe_finish_close();

  LibusbBackend& backend_;
  UsbContextPtr context_;  // the handle's context lives as long as the handle
  libusb_device_handle* handle_;
  std::unordered_map<InFlight*, std::unique_ptr<InFlight>> in_flight_;  // io thread only
  std::function<void()> close_done_;
  bool closing_ = false;
};

class LibusbDevice final : public Device {
 public:
  LibusbDevice(LibusbBackend& backend, UsbDeviceRef device, wire::DeviceInfo info)
      : backend_(backend), device_(std::move(device)), info_(std::move(info)) {}

  wire::DeviceInfo info() const override { return info_; }
  Expected<std::unique_ptr<DeviceHandle>, std::int32_t> open() override {
    libusb_device_handle* handle = nullptr;
    if (const int r = libusb_open(device_.get(), &handle); r != 0) {
      return Unexpected{as_wire_error(r)};
    }
    return std::unique_ptr<DeviceHandle>(
        std::make_unique<LibusbHandle>(backend_, device_.context(), handle));
  }

 private:
  LibusbBackend& backend_;
  UsbDeviceRef device_;
  wire::DeviceInfo info_;
};

// Devices are reported by two sources, libusb's hotplug callback and periodic enumerations
// (usb_rescan.h), reconciled by DevicePresence on the io thread so that each arrival and
// departure is reported once, by whichever source sees it first.
class LibusbBackend final : public Backend {
 public:
  LibusbBackend(asio::any_io_executor io, UsbContextPtr context, LibusbOptions options)
      : io_(std::move(io)), context_(std::move(context)), options_(options) {}

  ~LibusbBackend() override { stop(); }

  void start(DeviceListener& listener) override {
    listener_ = &listener;
    context_->handle_events(io_);
    if (libusb_has_capability(LIBUSB_CAP_HAS_HOTPLUG)) {
      const int r = libusb_hotplug_register_callback(
          context_->get(),
          static_cast<libusb_hotplug_event>(LIBUSB_HOTPLUG_EVENT_DEVICE_ARRIVED |
                                            LIBUSB_HOTPLUG_EVENT_DEVICE_LEFT),
          LIBUSB_HOTPLUG_ENUMERATE, LIBUSB_HOTPLUG_MATCH_ANY, LIBUSB_HOTPLUG_MATCH_ANY,
          LIBUSB_HOTPLUG_MATCH_ANY, &LibusbBackend::on_hotplug, this, &hotplug_);
      if (r != 0) {
        hotplug_ = 0;
        log::warn("libusb hotplug unavailable ({})", libusb_error_name(r));
      }
    }
    if (options_.rescan_interval.count() > 0) {
      rescanner_ = std::make_unique<UsbRescanner>(
          context_, options_.rescan_interval, [this](std::shared_ptr<const Enumeration> found) {
            post([this, found = std::move(found)] { enumerated(*found); });
          });
    } else if (!hotplug_) {
      log::warn("and rescanning is off: devices that come later are not exported");
      // Neither source: the devices present now, once.
      auto found = std::make_shared<Enumeration>();
      found->started = DevicePresence::Clock::now();
      for (UsbDeviceRef& d : list_devices(context_)) {
        found->devices.emplace_back(identify(d.get()), std::move(d));
      }
      enumerated(*found);
    }
  }

  void stop() override {
    if (stopped_.exchange(true) || !listener_) return;
    if (hotplug_) libusb_hotplug_deregister_callback(context_->get(), hotplug_);
    rescanner_.reset();
    settling_.clear();  // cancels the waits
  }

  void post(std::function<void()> fn) { asio::post(io_, std::move(fn)); }
  Worker& worker() { return worker_; }

 private:
  // The fast path. Runs on the event thread (or, with ENUMERATE, in start()).
  static int LIBUSB_CALL on_hotplug(libusb_context*, libusb_device* device,
                                    libusb_hotplug_event event, void* self) {
    auto* backend = static_cast<LibusbBackend*>(self);
    const auto seen = DevicePresence::Clock::now();
    if (event == LIBUSB_HOTPLUG_EVENT_DEVICE_ARRIVED) {
      backend->post([backend, seen, device = UsbDeviceRef(backend->context_, device)] {
        const UsbIdentity id = identify(device.get());
        if (!backend->presence_.arrival_seen(id, seen)) return;
        log::debug("{} arrived (libusb hotplug)", id.to_string());
        backend->read(id, device);
      });
    } else {
      backend->post([backend, seen, id = identify(device)] {
        if (!backend->presence_.departure_seen(id, seen)) return;
        log::debug("{} left (libusb hotplug)", id.to_string());
        backend->left(id);
      });
    }
    return 0;
  }

  // The slow path: what an enumeration found, against what the agent knows.
  void enumerated(const Enumeration& found) {
    if (stopped_) return;
    std::set<UsbIdentity> present;
    for (const auto& [id, device] : found.devices) present.insert(id);
    const DevicePresence::Changes changes = presence_.enumerated(present, found.started);
    for (const UsbIdentity& id : changes.left) {
      log::debug("{} left (enumeration)", id.to_string());
      left(id);
    }
    for (const UsbIdentity& id : changes.arrived) {
      for (const auto& [found_id, device] : found.devices) {
        if (found_id != id) continue;
        log::debug("{} arrived (enumeration)", id.to_string());
        read(id, device);
      }
    }
  }

  // Reading descriptors talks to the device: done on the worker thread. The kernel shows a new
  // device (and libusb, through udevd, may report it) before it has chosen the device's
  // configuration: a record read then would say "unconfigured" for good. So a device without
  // an active configuration is read again a little later, for a while, before it is taken as
  // it is.
  static constexpr auto kSettleStep = std::chrono::milliseconds(50);
  static constexpr int kSettleSteps = 40;  // 2 s

  void read(const UsbIdentity& id, UsbDeviceRef device, int waited = 0) {
    worker_.post([this, id, device = std::move(device), waited] {
      wire::DeviceInfo info = read_device_info(device.get());
      post([this, id, device, waited, info = std::move(info)] {
        if (stopped_) return;
        const bool unconfigured = info.active_config == 0 && !info.configs.empty();
        if (unconfigured && waited < kSettleSteps && presence_.reading(id)) {
          return read_later(id, device, waited + 1);
        }
        settling_.erase(id);
        // Hubs are reported too, as topology (the registry gives devices their parent_id);
        // sessions never open them: the kernel drives them.
        if (!presence_.arrival_read(id)) return;
        if (unconfigured) log::info("{} has no active configuration", id.to_string());
        // Its context handles events from now on (the long-lived one already does).
        device.context()->handle_events(io_);
        auto exported = std::make_shared<LibusbDevice>(*this, device, info);
        devices_.emplace(id, exported);
        listener_->device_arrived(exported);
      });
    });
  }

  void read_later(const UsbIdentity& id, UsbDeviceRef device, int waited) {
    if (waited == 1) log::debug("{}: not configured yet", id.to_string());
    auto& timer = settling_[id];
    if (!timer) timer = std::make_unique<asio::steady_timer>(io_);
    timer->expires_after(kSettleStep);
    timer->async_wait([this, id, device = std::move(device),
                       waited](const boost::system::error_code& ec) mutable {
      // Cancelled (stop, or the backend's end): `this` may be gone.
      if (!ec) read(id, std::move(device), waited);
    });
  }

  void left(const UsbIdentity& id) {
    auto it = devices_.find(id);
    if (it == devices_.end()) return;  // still being read
    const DevicePtr gone = it->second;
    devices_.erase(it);
    if (!stopped_) listener_->device_left(gone);
  }

  asio::any_io_executor io_;
  UsbContextPtr context_;  // the long-lived context; the hotplug callback is registered on it
  const LibusbOptions options_;
  DeviceListener* listener_ = nullptr;
  std::atomic<bool> stopped_{false};
  libusb_hotplug_callback_handle hotplug_ = 0;
  DevicePresence presence_;                   // io thread only
  std::map<UsbIdentity, DevicePtr> devices_;  // io thread only: the exported ones
  std::map<UsbIdentity, std::unique_ptr<asio::steady_timer>> settling_;  // io thread only
  Worker worker_;
  std::unique_ptr<UsbRescanner> rescanner_;  // last: stops first
};

// ---- LibusbHandle ------------------------------------------------------------------------

LibusbHandle::~LibusbHandle() {
  if (handle_) libusb_close(handle_);
}

void LibusbHandle::request(const DeviceRequest& request, RequestDone done) {
  // The worker runs it before the close that frees the handle (jobs run in order).
  backend_.worker().post([this, handle_ = handle_, request, done = std::move(done)] {
    std::uint32_t value = 0;
    const int r = std::visit(
        [&](const auto& m) -> int {
          using M = std::decay_t<decltype(m)>;
          if constexpr (std::is_same_v<M, wire::SetConfiguration>) {
            return libusb_set_configuration(handle_, m.configuration);
          } else if constexpr (std::is_same_v<M, wire::GetConfiguration>) {
            int config = 0;
            const int r = libusb_get_configuration(handle_, &config);
            value = static_cast<std::uint32_t>(config);
            return r;
          } else if constexpr (std::is_same_v<M, wire::ClaimInterface>) {
            return libusb_claim_interface(handle_, m.interface_number);
          } else if constexpr (std::is_same_v<M, wire::ReleaseInterface>) {
            return libusb_release_interface(handle_, m.interface_number);
          } else if constexpr (std::is_same_v<M, wire::SetAltSetting>) {
            return libusb_set_interface_alt_setting(handle_, m.interface_number, m.alt_setting);
          } else if constexpr (std::is_same_v<M, wire::ClearHalt>) {
            return libusb_clear_halt(handle_, m.endpoint);
          } else if constexpr (std::is_same_v<M, wire::ResetDevice>) {
            return libusb_reset_device(handle_);
          } else {
            static_assert(std::is_same_v<M, wire::KernelDriver>);
            switch (m.op) {
              case wire::KernelDriverOp::Query: {
                const int r = libusb_kernel_driver_active(handle_, m.interface_number);
                if (r < 0) return r;
                value = static_cast<std::uint32_t>(r);
                return 0;
              }
              case wire::KernelDriverOp::Detach:
                return libusb_detach_kernel_driver(handle_, m.interface_number);
              case wire::KernelDriverOp::Attach:
                return libusb_attach_kernel_driver(handle_, m.interface_number);
            }
            return LIBUSB_ERROR_INVALID_PARAM;
          }
        },
        request);
    backend_.post([done, r, value] { done(as_wire_error(r), value); });
  });
}

void LibusbHandle::submit(TransferPtr transfer, TransferDone done) {
  const Transfer& t = *transfer;
  const int packets = static_cast<int>(t.iso_lengths.size());
  libusb_transfer* usb = libusb_alloc_transfer(packets);
  auto in_flight = std::make_unique<InFlight>();
  InFlight* f = in_flight.get();
  f->owner = this;
  f->transfer = std::move(transfer);
  f->done = std::move(done);
  f->usb = usb;
  const auto length = static_cast<int>(f->transfer->buffer.size());
  unsigned char* data = f->transfer->buffer.data();
  switch (t.type) {
    case wire::UrbType::Control:
      f->control.resize(LIBUSB_CONTROL_SETUP_SIZE + f->transfer->buffer.size());
      std::copy(t.setup.begin(), t.setup.end(), f->control.begin());
      if (!t.is_in()) {
        std::copy(t.buffer.begin(), t.buffer.end(), f->control.begin() + LIBUSB_CONTROL_SETUP_SIZE);
      }
      libusb_fill_control_transfer(usb, handle_, f->control.data(), &on_transfer_done, f,
                                   t.timeout_ms);
      break;
    case wire::UrbType::Bulk:
      libusb_fill_bulk_transfer(usb, handle_, t.endpoint, data, length, &on_transfer_done, f,
                                t.timeout_ms);
      break;
    case wire::UrbType::Interrupt:
      libusb_fill_interrupt_transfer(usb, handle_, t.endpoint, data, length, &on_transfer_done, f,
                                     t.timeout_ms);
      break;
    case wire::UrbType::Iso:
      libusb_fill_iso_transfer(usb, handle_, t.endpoint, data, length, packets, &on_transfer_done,
                               f, t.timeout_ms);
      for (int i = 0; i < packets; ++i) usb->iso_packet_desc[i].length = t.iso_lengths[i];
      break;
  }
  usb->flags = static_cast<std::uint8_t>(
      t.flags & (LIBUSB_TRANSFER_SHORT_NOT_OK | LIBUSB_TRANSFER_ADD_ZERO_PACKET));
  in_flight_.emplace(f, std::move(in_flight));
  if (const int r = libusb_submit_transfer(usb); r != 0) {
    log::debug("libusb_submit_transfer failed: {}", libusb_error_name(r));
    f->submit_failed = r == LIBUSB_ERROR_NO_DEVICE ? UrbStatus::NoDevice : UrbStatus::Error;
    // Reported after submit() returns, like any other completion.
    backend_.post([this, f] { finish(f); });
  }
}

void LIBUSB_CALL LibusbHandle::on_transfer_done(libusb_transfer* usb) {
  auto* f = static_cast<InFlight*>(usb->user_data);
  // Normally called on the io thread, which handles libusb's events: the completion goes out
  // from here. Anywhere else, results are read on the io thread; the transfer lives until then.
  if (UsbEventPump::handling_events_here()) return f->owner->finish(f);
  f->owner->backend_.post([f] { f->owner->finish(f); });
}

void LibusbHandle::finish(InFlight* f) {
  auto node = in_flight_.extract(f);
  std::unique_ptr<InFlight> owned = std::move(node.mapped());
  Transfer& t = *owned->transfer;
  libusb_transfer* usb = owned->usb;
  if (owned->submit_failed) {
    t.status = *owned->submit_failed;
    t.actual_length = 0;
    t.iso_results.assign(t.iso_lengths.size(), {t.status, 0});
    libusb_free_transfer(usb);
    owned->done(owned->transfer);
    maybe_finish_close();
    return;
  }
  t.status = static_cast<UrbStatus>(usb->status);
  t.actual_length = static_cast<std::uint32_t>(std::max(usb->actual_length, 0));
  if (t.type == wire::UrbType::Control && t.is_in()) {
    const std::size_t n = std::min<std::size_t>(t.actual_length, t.buffer.size());
    std::copy_n(owned->control.begin() + LIBUSB_CONTROL_SETUP_SIZE, n, t.buffer.begin());
  }
  if (t.type == wire::UrbType::Iso) {
    t.iso_results.clear();
    for (int i = 0; i < usb->num_iso_packets; ++i) {
      const auto& p = usb->iso_packet_desc[i];
      t.iso_results.push_back({static_cast<UrbStatus>(p.status), p.actual_length});
    }
  }
  libusb_free_transfer(usb);
  owned->done(owned->transfer);
  maybe_finish_close();
}

void LibusbHandle::cancel(const TransferPtr& transfer) {
  for (const auto& [f, owned] : in_flight_) {
    if (owned->transfer == transfer) libusb_cancel_transfer(f->usb);
  }
}

void LibusbHandle::close(std::function<void()> done) {
  closing_ = true;
  close_done_ = std::move(done);
  for (const auto& [f, owned] : in_flight_) libusb_cancel_transfer(f->usb);
  maybe_finish_close();
}

void LibusbHandle::maybe_finish_close() {
  if (!closing_ || !in_flight_.empty() || !close_done_) return;
  // Closing releases the interfaces (the kernel driver may come back: slow) and takes libusb's
  // event lock, so it runs on the worker, after any request still queued for this handle.
  auto done = std::move(close_done_);
  libusb_device_handle* handle = std::exchange(handle_, nullptr);
  LibusbBackend& backend = backend_;
  backend.worker().post([&backend, context = context_, handle, done = std::move(done)] {
    libusb_close(handle);
    backend.post(done);
  });
}

}  // namespace

Expected<std::unique_ptr<Backend>, std::string> make_libusb_backend(asio::any_io_executor io,
                                                                    LibusbOptions options) {
  auto context = UsbContext::create();
  if (!context) return Unexpected{context.error()};
  return std::unique_ptr<Backend>(
      std::make_unique<LibusbBackend>(std::move(io), std::move(*context), options));
}

}  // namespace usbnet::agent
