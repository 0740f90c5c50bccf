// Several devices in one libusb context and one event loop, every transfer asynchronous:
//  - a USB mass-storage device (Bulk-Only Transport) reads back, command after command, blocks
//    that the program wrote first: each READ(10) is three transfers (CBW, data, CSW), each
//    submitted from the previous one's callback, the data compared byte for byte;
//  - a loopback device (1209:0001, docs/DEVICES.md) streams its source endpoint 0x82 (every
//    byte checked against the pattern) and echoes messages through 0x01/0x81 (each checked by
//    length and CRC-32), several transfers in flight on each;
// first with a thread of the program handling events (libusb_handle_events_timeout_completed),
// then in the program's own poll() loop (libusb_get_pollfds at the start, kept current by
// libusb_set_pollfd_notifiers, and libusb_get_next_timeout; the program takes a moment between
// its poll and libusb's turn, as a program with other work does). Whenever poll() reports the
// stick's descriptor ready, the zero-timeout libusb_handle_events_timeout_completed that follows
// must run the stick's callbacks, however many of the loopback device's completions wait too.
// Every callback must run in the thread that handles events. In the poll loop, a transfer
// waiting on a HID mouse's interrupt endpoint and one waiting on the loopback's IN endpoint are
// cancelled while the other traffic goes on: both must end CANCELLED. Hotplug registered with
// ENUMERATE must report every device named, with the context it was registered on. At the end,
// still in the poll loop, the loopback device's DETACH request (it leaves the bus and comes back)
// and the REPLUGGED device (unplugged and plugged in again by whoever runs this program, once it
// prints "waiting for") must each reach a hotplug callback as exactly one departure and one
// arrival.
//
// It prints each device's bus and the figures of each phase; exit status 0 when everything
// held, 1 otherwise (with a "FAIL" line per problem). No wait is unbounded: transfers have
// timeouts, and every loop ends by SECONDS.
//
//   mixed_events STORAGE_VID:PID MOUSE_VID:PID LOOPBACK_VID:PID REPLUGGED_VID:PID SECONDS
#include <poll.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <functional>
#include <iterator>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "bot.h"

namespace {

using Clock = std::chrono::steady_clock;

constexpr unsigned kTimeoutMs = 20000;       // a transfer that should complete never waits longer
constexpr unsigned kProbeTimeoutMs = 10000;  // a transfer that is cancelled long before this
// In the program's own poll loop, the time it spends between poll() and
// libusb_handle_events_timeout_completed.
constexpr auto kWorkBetweenPolls = std::chrono::milliseconds(20);

struct TransferDeleter {
  void operator()(libusb_transfer* t) const { libusb_free_transfer(t); }
};
using Transfer = std::unique_ptr<libusb_transfer, TransferDeleter>;

Transfer new_transfer() {
  Transfer t(libusb_alloc_transfer(0));
  if (!t) lab::fail("libusb_alloc_transfer failed");
  return t;
}

// ---- what every callback checks -----------------------------------------------------------------

std::atomic<std::thread::id> event_thread;  // the thread that handles events in this phase
std::atomic<int> wrong_thread{0};
std::atomic<int> failures{0};

void in_callback() {
  if (std::this_thread::get_id() != event_thread.load()) ++wrong_thread;
}

void failure(const std::string& what) {
  std::printf("FAIL %s\n", what.c_str());
  std::fflush(stdout);
  ++failures;
}

bool completed(const libusb_transfer* t, int expected_length, const char* what) {
  if (t->status == LIBUSB_TRANSFER_COMPLETED && t->actual_length == expected_length) return true;
  failure(std::string(what) + ": " + libusb_error_name(t->status) + ", " +
          std::to_string(t->actual_length) + " of " + std::to_string(expected_length) + " bytes");
  return false;
}

bool submit(libusb_transfer* t, std::atomic<int>& in_flight, const char* what) {
  if (const int r = libusb_submit_transfer(t); r != 0) {
    failure(std::string("submit ") + what + ": " + libusb_error_name(r));
    return false;
  }
  ++in_flight;
  return true;
}

void put_le32(unsigned char* p, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<unsigned char>(v >> (8 * i));
}
std::uint32_t get_le32(const unsigned char* p) {
  return p[0] | (p[1] << 8) | (p[2] << 16) | (static_cast<std::uint32_t>(p[3]) << 24);
}

// ---- the mass-storage device: READ(10) after READ(10), asynchronously ---------------------------

class StorageReader {
 public:
  // Reads `region` (written at `lba`) back in pieces of `blocks` blocks, round and round.
  StorageReader(lab::Interface& usb, std::uint32_t lba, std::uint32_t block_size,
                std::uint16_t blocks, const std::vector<unsigned char>& region)
      : usb_(usb),
        lba_(lba),
        block_size_(block_size),
        blocks_(blocks),
        region_(region),
        data_(std::size_t{blocks} * block_size) {
    auto fill = [this](Transfer& t, std::uint8_t ep, unsigned char* buffer, int length,
                       libusb_transfer_cb_fn done) {
      libusb_fill_bulk_transfer(t.get(), usb_.handle.get(), ep, buffer, length, done, this,
                                kTimeoutMs);
    };
    fill(cbw_, usb.bulk_out, cbw_bytes_, sizeof cbw_bytes_, &StorageReader::on_cbw);
    fill(data_transfer_, usb.bulk_in, data_.data(), static_cast<int>(data_.size()),
         &StorageReader::on_data);
    fill(csw_, usb.bulk_in, csw_bytes_, sizeof csw_bytes_, &StorageReader::on_csw);
  }

  void start() {
    running_ = true;
    next_command();
  }
  void stop() { running_ = false; }  // the command in progress finishes
  int in_flight() const { return in_flight_; }
  int commands() const { return commands_; }
  int callbacks() const { return callbacks_; }
  // Callbacks that ran while the other device had transfers in flight.
  int overlapping() const { return overlapping_; }
  void set_other(const std::atomic<int>* other_in_flight) { other_ = other_in_flight; }

 private:
  void next_command() {
    const std::uint32_t pieces = static_cast<std::uint32_t>(region_.size() / data_.size());
    offset_ = (commands_ % pieces) * static_cast<std::uint32_t>(data_.size());
    const std::uint32_t lba = lba_ + offset_ / block_size_;
    std::memset(cbw_bytes_, 0, sizeof cbw_bytes_);
    put_le32(cbw_bytes_, 0x43425355);  // "USBC"
    put_le32(cbw_bytes_ + 4, ++tag_);
    put_le32(cbw_bytes_ + 8, static_cast<std::uint32_t>(data_.size()));
    cbw_bytes_[12] = 0x80;  // data IN
    cbw_bytes_[14] = 10;    // READ(10)
    const unsigned char cdb[10] = {0x28,
                                   0,
                                   static_cast<unsigned char>(lba >> 24),
                                   static_cast<unsigned char>(lba >> 16),
                                   static_cast<unsigned char>(lba >> 8),
                                   static_cast<unsigned char>(lba),
                                   0,
                                   static_cast<unsigned char>(blocks_ >> 8),
                                   static_cast<unsigned char>(blocks_),
                                   0};
    std::memcpy(cbw_bytes_ + 15, cdb, sizeof cdb);
    submit(cbw_.get(), in_flight_, "CBW");
  }

  void step() {
    in_callback();
    --in_flight_;
    ++callbacks_;
    if (other_ && *other_ > 0) ++overlapping_;
  }

  static void LIBUSB_CALL on_cbw(libusb_transfer* t) {
    auto* self = static_cast<StorageReader*>(t->user_data);
    self->step();
    if (!completed(t, sizeof self->cbw_bytes_, "storage CBW")) return;
    submit(self->data_transfer_.get(), self->in_flight_, "storage data");
  }

  static void LIBUSB_CALL on_data(libusb_transfer* t) {
    auto* self = static_cast<StorageReader*>(t->user_data);
    self->step();
    if (!completed(t, static_cast<int>(self->data_.size()), "storage READ(10) data")) return;
    if (std::memcmp(self->data_.data(), self->region_.data() + self->offset_, self->data_.size()) !=
        0) {
      failure("storage: READ(10) at byte " + std::to_string(self->offset_) +
              " of the region returned other bytes than were written");
      return;
    }
    submit(self->csw_.get(), self->in_flight_, "storage CSW");
  }

  static void LIBUSB_CALL on_csw(libusb_transfer* t) {
    auto* self = static_cast<StorageReader*>(t->user_data);
    self->step();
    if (!completed(t, sizeof self->csw_bytes_, "storage CSW")) return;
    const unsigned char* csw = self->csw_bytes_;
    if (get_le32(csw) != 0x53425355 || get_le32(csw + 4) != self->tag_ || get_le32(csw + 8) != 0 ||
        csw[12] != 0) {
      failure("storage: the CSW of READ(10) is not a clean pass for its tag");
      return;
    }
    ++self->commands_;
    if (self->running_) self->next_command();
  }

  lab::Interface& usb_;
  const std::uint32_t lba_, block_size_;
  const std::uint16_t blocks_;
  const std::vector<unsigned char>& region_;
  std::vector<unsigned char> data_;
  unsigned char cbw_bytes_[31] = {};
  unsigned char csw_bytes_[13] = {};
  Transfer cbw_ = new_transfer(), data_transfer_ = new_transfer(), csw_ = new_transfer();
  std::uint32_t tag_ = 0x1000, offset_ = 0;
  std::atomic<bool> running_{false};
  std::atomic<int> in_flight_{0}, commands_{0}, callbacks_{0}, overlapping_{0};
  const std::atomic<int>* other_ = nullptr;
};

// ---- the loopback device: the source stream and echoed messages ---------------------------------

class LoopbackTraffic {
 public:
  static constexpr int kSourceDepth = 4, kSourceLength = 16384;
  static constexpr int kEchoSlots = 3, kEchoBuffer = 16384;
  static constexpr std::uint8_t kLoopOut = 0x01, kLoopIn = 0x81, kSourceIn = 0x82;

  explicit LoopbackTraffic(libusb_device_handle* h) : handle_(h) {
    for (int i = 0; i < kSourceDepth; ++i) {
      auto s = std::make_unique<Source>();
      s->owner = this;
      s->buffer.resize(kSourceLength);
      libusb_fill_bulk_transfer(s->transfer.get(), h, kSourceIn, s->buffer.data(), kSourceLength,
                                &LoopbackTraffic::on_source, s.get(), kTimeoutMs);
      sources_.push_back(std::move(s));
    }
    for (int i = 0; i < kEchoSlots; ++i) {
      auto e = std::make_unique<Echo>();
      e->owner = this;
      e->received.resize(kEchoBuffer);
      echoes_.push_back(std::move(e));
    }
  }

  void start_source() {
    source_running_ = true;
    for (auto& s : sources_) submit(s->transfer.get(), in_flight_, "loopback source");
  }
  void start_echoes() {
    echo_running_ = true;
    for (auto& e : echoes_) send(*e);
  }
  void stop_source() { source_running_ = false; }
  void stop_echoes() { echo_running_ = false; }
  int echo_in_flight() const { return echo_in_flight_; }

  const std::atomic<int>& in_flight() const { return in_flight_; }
  std::uint64_t source_bytes() const { return source_offset_; }
  int echoed() const { return echoed_; }
  int overlapping() const { return overlapping_; }
  void set_other(const StorageReader* other) { other_ = other; }

 private:
  struct Source {
    LoopbackTraffic* owner = nullptr;
    Transfer transfer = new_transfer();
    std::vector<unsigned char> buffer;
  };
  struct Echo {
    LoopbackTraffic* owner = nullptr;
    Transfer out = new_transfer(), in = new_transfer();
    std::vector<unsigned char> sent, received;
    bool out_done = true, in_done = true;
  };

  void step() {
    in_callback();
    --in_flight_;
    if (other_ && other_->in_flight() > 0) ++overlapping_;
  }

  static void LIBUSB_CALL on_source(libusb_transfer* t) {
    auto* s = static_cast<Source*>(t->user_data);
    LoopbackTraffic& self = *s->owner;
    self.step();
    if (!completed(t, kSourceLength, "loopback source")) return;
    // Transfers on one endpoint complete in order: this one continues the stream.
    for (int i = 0; i < t->actual_length; ++i) {
      if (s->buffer[static_cast<std::size_t>(i)] != (self.source_offset_ + i) % 251) {
        failure("loopback source: byte " + std::to_string(self.source_offset_ + i) +
                " breaks the pattern");
        return;
      }
    }
    self.source_offset_ += static_cast<std::uint64_t>(t->actual_length);
    if (self.source_running_) submit(t, self.in_flight_, "loopback source");
  }

  // Lengths that cover short, whole-packet (ended by a zero-length packet) and multi-packet
  // messages.
  void send(Echo& e) {
    static constexpr int kLengths[] = {1, 511, 512, 1500, 4096, 8000, 12345};
    const int length = kLengths[sent_ % std::size(kLengths)];
    ++sent_;
    e.sent.resize(static_cast<std::size_t>(length));
    for (auto& byte : e.sent) {
      seed_ = seed_ * 1664525u + 1013904223u;
      byte = static_cast<unsigned char>(seed_ >> 24);
    }
    expected_.emplace_back(length, lab::crc32(e.sent.data(), e.sent.size()));
    libusb_fill_bulk_transfer(e.out.get(), handle_, kLoopOut, e.sent.data(), length,
                              &LoopbackTraffic::on_echo_out, &e, kTimeoutMs);
    libusb_fill_bulk_transfer(e.in.get(), handle_, kLoopIn, e.received.data(), kEchoBuffer,
                              &LoopbackTraffic::on_echo_in, &e, kTimeoutMs);
    // The k-th IN submitted gets the k-th message queued: OUT then IN, slot after slot.
    e.out_done = e.in_done = false;
    if (submit(e.out.get(), in_flight_, "loopback OUT")) ++echo_in_flight_;
    if (submit(e.in.get(), in_flight_, "loopback IN")) ++echo_in_flight_;
  }

  void echo_step(Echo& e) {
    --echo_in_flight_;
    // A slot is reused when both its transfers are back.
    if (e.out_done && e.in_done && echo_running_ && failures == 0) send(e);
  }

  static void LIBUSB_CALL on_echo_out(libusb_transfer* t) {
    auto* e = static_cast<Echo*>(t->user_data);
    LoopbackTraffic& self = *e->owner;
    self.step();
    e->out_done = true;
    completed(t, static_cast<int>(e->sent.size()), "loopback OUT");
    self.echo_step(*e);
  }

  static void LIBUSB_CALL on_echo_in(libusb_transfer* t) {
    auto* e = static_cast<Echo*>(t->user_data);
    LoopbackTraffic& self = *e->owner;
    self.step();
    e->in_done = true;
    if (self.expected_.empty()) {
      failure("loopback IN: a message nobody sent");
    } else {
      const auto [length, crc] = self.expected_.front();
      self.expected_.pop_front();
      if (completed(t, length, "loopback IN")) {
        if (lab::crc32(e->received.data(), static_cast<std::size_t>(length)) != crc) {
          failure("loopback IN: the message came back with other bytes");
        } else {
          ++self.echoed_;
        }
      }
    }
    self.echo_step(*e);
  }

  libusb_device_handle* handle_;
  std::vector<std::unique_ptr<Source>> sources_;
  std::vector<std::unique_ptr<Echo>> echoes_;
  std::deque<std::pair<int, std::uint32_t>> expected_;  // messages sent, in order
  std::uint32_t seed_ = 20261124;
  std::size_t sent_ = 0;
  std::atomic<bool> source_running_{false}, echo_running_{false};
  std::atomic<std::uint64_t> source_offset_{0};
  std::atomic<int> in_flight_{0}, echo_in_flight_{0}, echoed_{0}, overlapping_{0};
  const StorageReader* other_ = nullptr;
};

// ---- a transfer that waits until it is cancelled ------------------------------------------------

struct Probe {
  Transfer transfer = new_transfer();
  std::vector<unsigned char> buffer;
  std::atomic<bool> done{false};
  std::atomic<int> status{-1};
  std::atomic<int> in_flight{0};

  static void LIBUSB_CALL on_done(libusb_transfer* t) {
    auto* p = static_cast<Probe*>(t->user_data);
    in_callback();
    p->status = t->status;
    --p->in_flight;
    p->done = true;
  }
};

// ---- two ways of handling events ----------------------------------------------------------------

// A thread of the program that handles events until it is destroyed.
class EventThread {
 public:
  explicit EventThread(libusb_context* ctx) : ctx_(ctx) {
    std::lock_guard lock(mutex_);
    thread_ = std::thread([this] { run(); });
    event_thread = thread_.get_id();
    ready_ = true;
    ready_cond_.notify_one();
  }
  ~EventThread() {
    stop_ = true;
    thread_.join();
  }

 private:
  void run() {
    {
      // Handles nothing before the program knows which thread this is.
      std::unique_lock lock(mutex_);
      ready_cond_.wait(lock, [this] { return ready_; });
    }
    while (!stop_) {
      timeval tv{0, 100000};
      if (const int r = libusb_handle_events_timeout_completed(ctx_, &tv, nullptr); r != 0) {
        failure(std::string("libusb_handle_events_timeout_completed: ") + libusb_error_name(r));
      }
    }
  }

  libusb_context* ctx_;
  std::mutex mutex_;
  std::condition_variable ready_cond_;
  bool ready_ = false;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// The program's own poll() loop over libusb's descriptors: the list libusb_get_pollfds gives
// when the context is new, kept current by the notifiers (which libusb may call from any
// thread), as libusb's documentation describes.
class PollLoop {
 public:
  explicit PollLoop(libusb_context* ctx) : ctx_(ctx) {
    libusb_set_pollfd_notifiers(ctx, &PollLoop::on_added, &PollLoop::on_removed, this);
    const libusb_pollfd** list = libusb_get_pollfds(ctx);
    if (!list) lab::fail("libusb_get_pollfds returned nothing");
    std::lock_guard lock(mutex_);
    for (const libusb_pollfd** p = list; *p; ++p) fds_.push_back({(*p)->fd, (*p)->events, 0});
    libusb_free_pollfds(list);
  }
  ~PollLoop() { libusb_set_pollfd_notifiers(ctx_, nullptr, nullptr, nullptr); }

  // The descriptors the notifiers left the program with, against a fresh libusb_get_pollfds.
  void compare_with_pollfds() {
    std::set<std::pair<int, short>> notified, listed;
    {
      std::lock_guard lock(mutex_);
      for (const pollfd& p : fds_) notified.insert({p.fd, p.events});
    }
    const libusb_pollfd** list = libusb_get_pollfds(ctx_);
    for (const libusb_pollfd** p = list; p && *p; ++p) listed.insert({(*p)->fd, (*p)->events});
    libusb_free_pollfds(list);
    std::printf(
        "own poll loop: %zu descriptors (libusb_get_pollfds at the start, then %d added "
        "and %d removed by the notifiers)\n",
        notified.size(), added_.load(), removed_.load());
    if (notified != listed) {
      failure(
          "the notifiers left the program with other descriptors than libusb_get_pollfds "
          "lists now (" +
          std::to_string(notified.size()) + " against " + std::to_string(listed.size()) + ")");
    }
  }

  // The descriptors the program polls now.
  std::set<int> descriptors() {
    std::lock_guard lock(mutex_);
    std::set<int> fds;
    for (const pollfd& p : fds_) fds.insert(p.fd);
    return fds;
  }

  // Watches a device's descriptors: when poll() reports one of them ready, the call to
  // libusb_handle_events_timeout_completed that follows must run at least one of the device's
  // callbacks (counted by `callbacks`), because libusb handles what is pending even with a
  // zero timeout. Rounds in which it ran none are counted in unhandled_rounds().
  void watch(std::set<int> fds, std::function<int()> callbacks) {
    watched_ = std::move(fds);
    watched_callbacks_ = std::move(callbacks);
  }
  int unhandled_rounds() const { return unhandled_rounds_; }
  int watched_ready_rounds() const { return watched_ready_rounds_; }

  // Polls and handles events in this thread until `done()` or `deadline`. With `busy`,
  // something is expected to complete at any moment, so a poll() that sleeps its whole second
  // means libusb's descriptors did not announce an event (counted in idle_polls()).
  template <typename Done>
  bool run(Done done, Clock::time_point deadline, bool busy) {
    event_thread = std::this_thread::get_id();
    while (!done() && Clock::now() < deadline) {
      int timeout_ms = 1000;
      bool libusb_timeout = false;
      timeval next{};
      if (libusb_get_next_timeout(ctx_, &next) == 1) {
        const auto ms = static_cast<int>(next.tv_sec * 1000 + (next.tv_usec + 999) / 1000);
        if (ms < timeout_ms) {
          timeout_ms = ms;
          libusb_timeout = true;
        }
      }
      std::vector<pollfd> fds;
      {
        std::lock_guard lock(mutex_);
        fds = fds_;
      }
      const int n = ::poll(fds.data(), fds.size(), timeout_ms);
      if (n < 0 && errno != EINTR) lab::fail(std::string("poll: ") + std::strerror(errno));
      if (n == 0 && busy && !libusb_timeout) ++idle_polls_;
      ++polls_;
      const bool watched_ready = std::any_of(fds.begin(), fds.end(), [this](const pollfd& p) {
        return p.revents != 0 && watched_.contains(p.fd);
      });
      // The program's other work between its poll and libusb's turn: meanwhile more
      // completions of the remote device arrive, and the round must handle the stick's too.
      std::this_thread::sleep_for(kWorkBetweenPolls);
      const int callbacks_before = watched_ready ? watched_callbacks_() : 0;
      timeval zero{0, 0};
      if (const int r = libusb_handle_events_timeout_completed(ctx_, &zero, nullptr); r != 0) {
        failure(std::string("libusb_handle_events_timeout_completed: ") + libusb_error_name(r));
      }
      if (watched_ready) {
        ++watched_ready_rounds_;
        if (watched_callbacks_() == callbacks_before) ++unhandled_rounds_;
      }
    }
    return done();
  }
  int idle_polls() const { return idle_polls_; }
  int polls() const { return polls_; }

 private:
  static void LIBUSB_CALL on_added(int fd, short events, void* self) {
    auto* loop = static_cast<PollLoop*>(self);
    std::lock_guard lock(loop->mutex_);
    loop->fds_.push_back({fd, events, 0});
    ++loop->added_;
  }
  static void LIBUSB_CALL on_removed(int fd, void* self) {
    auto* loop = static_cast<PollLoop*>(self);
    std::lock_guard lock(loop->mutex_);
    std::erase_if(loop->fds_, [fd](const pollfd& p) { return p.fd == fd; });
    ++loop->removed_;
  }

  libusb_context* ctx_;
  std::mutex mutex_;
  std::vector<pollfd> fds_;
  std::atomic<int> added_{0}, removed_{0};
  int idle_polls_ = 0, polls_ = 0;
  std::set<int> watched_;
  std::function<int()> watched_callbacks_;
  int watched_ready_rounds_ = 0, unhandled_rounds_ = 0;
};

// ---- hotplug ------------------------------------------------------------------------------------

using Ids = std::pair<std::uint16_t, std::uint16_t>;

Ids ids_of(libusb_device* dev) {
  libusb_device_descriptor d{};
  libusb_get_device_descriptor(dev, &d);
  return {d.idVendor, d.idProduct};
}

std::string text(Ids ids) {
  char t[16];
  std::snprintf(t, sizeof t, "%04x:%04x", ids.first, ids.second);
  return t;
}

// What the hotplug callbacks saw.
struct Hotplug {
  libusb_context* ctx = nullptr;
  std::mutex mutex;
  std::set<Ids> enumerated;
  std::map<Ids, int> arrived, left;

  int count(const std::map<Ids, int>& events, Ids ids) {
    std::lock_guard lock(mutex);
    auto it = events.find(ids);
    return it == events.end() ? 0 : it->second;
  }
  void check_context(libusb_context* given) {
    if (given != ctx) failure("a hotplug callback got another context than it was registered on");
  }
};

int LIBUSB_CALL on_enumerated(libusb_context* ctx, libusb_device* dev, libusb_hotplug_event,
                              void* user_data) {
  in_callback();  // ENUMERATE: libusb reports present devices in the registering thread
  auto* h = static_cast<Hotplug*>(user_data);
  h->check_context(ctx);
  const Ids ids = ids_of(dev);
  std::printf("hotplug ENUMERATE: %s on bus %u\n", text(ids).c_str(), libusb_get_bus_number(dev));
  std::lock_guard lock(h->mutex);
  h->enumerated.insert(ids);
  return 0;
}

int LIBUSB_CALL on_event(libusb_context* ctx, libusb_device* dev, libusb_hotplug_event event,
                         void* user_data) {
  in_callback();
  auto* h = static_cast<Hotplug*>(user_data);
  h->check_context(ctx);
  const bool arrived = event == LIBUSB_HOTPLUG_EVENT_DEVICE_ARRIVED;
  const Ids ids = ids_of(dev);
  std::printf("hotplug: %s %s (bus %u address %u)\n", text(ids).c_str(),
              arrived ? "arrived" : "left", libusb_get_bus_number(dev),
              libusb_get_device_address(dev));
  std::lock_guard lock(h->mutex);
  ++(arrived ? h->arrived : h->left)[ids];
  return 0;
}

std::uint8_t bus_of(const lab::Interface& usb) {
  return libusb_get_bus_number(libusb_get_device(usb.handle.get()));
}

// Waits (bounded) for a condition that the event thread makes true.
template <typename Done>
bool wait_for(Done done, Clock::time_point deadline) {
  while (!done() && Clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return done();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 6) {
    std::fprintf(stderr,
                 "usage: mixed_events STORAGE_VID:PID MOUSE_VID:PID LOOPBACK_VID:PID "
                 "REPLUGGED_VID:PID SECONDS\n");
    return 2;
  }
  Ids storage_ids, mouse_ids, loop_ids, replugged_ids;
  lab::parse_vid_pid(argv[1], storage_ids.first, storage_ids.second);
  lab::parse_vid_pid(argv[2], mouse_ids.first, mouse_ids.second);
  lab::parse_vid_pid(argv[3], loop_ids.first, loop_ids.second);
  lab::parse_vid_pid(argv[4], replugged_ids.first, replugged_ids.second);
  const auto deadline = Clock::now() + std::chrono::seconds(std::stoi(argv[5]));
  std::setvbuf(stdout, nullptr, _IOLBF, 0);

  lab::Context context = lab::init();
  libusb_context* ctx = context.get();
  if (!libusb_has_capability(LIBUSB_CAP_HAS_HOTPLUG)) lab::fail("libusb has no hotplug here");
  // The program's poll loop follows libusb's descriptors from the start.
  PollLoop loop(ctx);

  // Hotplug with ENUMERATE: every device present, whichever way it is reached.
  Hotplug hotplug;
  hotplug.ctx = ctx;
  event_thread = std::this_thread::get_id();
  libusb_hotplug_callback_handle enumerate_handle = 0, loop_handle = 0, replugged_handle = 0;
  lab::check(libusb_hotplug_register_callback(ctx, LIBUSB_HOTPLUG_EVENT_DEVICE_ARRIVED,
                                              LIBUSB_HOTPLUG_ENUMERATE, LIBUSB_HOTPLUG_MATCH_ANY,
                                              LIBUSB_HOTPLUG_MATCH_ANY, LIBUSB_HOTPLUG_MATCH_ANY,
                                              &on_enumerated, &hotplug, &enumerate_handle),
             "hotplug register (ENUMERATE)");
  libusb_hotplug_deregister_callback(ctx, enumerate_handle);
  for (Ids ids : {storage_ids, mouse_ids, loop_ids, replugged_ids}) {
    if (!hotplug.enumerated.contains(ids)) {
      failure("hotplug ENUMERATE did not report " + text(ids));
    }
  }
  // Later comings and goings of two devices, for the end.
  for (auto [ids, handle] :
       {std::pair{loop_ids, &loop_handle}, std::pair{replugged_ids, &replugged_handle}}) {
    lab::check(libusb_hotplug_register_callback(
                   ctx, LIBUSB_HOTPLUG_EVENT_DEVICE_ARRIVED | LIBUSB_HOTPLUG_EVENT_DEVICE_LEFT, 0,
                   ids.first, ids.second, LIBUSB_HOTPLUG_MATCH_ANY, &on_event, &hotplug, handle),
               "hotplug register");
  }

  // The storage: a region written with synchronous transfers, read back asynchronously below.
  const std::set<int> before_storage = loop.descriptors();
  lab::Interface storage =
      lab::open_interface(ctx, storage_ids.first, storage_ids.second, LIBUSB_CLASS_MASS_STORAGE);
  // Opening the local stick gave the program its descriptor (the real library's, for usbfs).
  std::set<int> storage_fds;
  std::ranges::set_difference(loop.descriptors(), before_storage,
                              std::inserter(storage_fds, storage_fds.end()));
  if (storage_fds.size() != 1) {
    failure("opening the stick added " + std::to_string(storage_fds.size()) +
            " descriptors to poll, not 1");
  }
  lab::BulkOnly bot(storage);
  bot.reset_recovery();
  bot.wait_until_ready();
  std::uint32_t capacity = 0, block_size = 0;
  bot.read_capacity(capacity, block_size);
  constexpr std::uint32_t kLba = 8192;
  constexpr std::uint16_t kRegionBlocks = 64, kBlocksPerRead = 16;
  if (block_size == 0 || block_size > 4096 || kLba + kRegionBlocks > capacity) {
    lab::fail("the storage device is too small for the region this program uses");
  }
  std::vector<unsigned char> region(std::size_t{kRegionBlocks} * block_size);
  std::uint32_t seed =
      static_cast<std::uint32_t>(Clock::now().time_since_epoch().count());  // new every run
  for (auto& byte : region) {
    seed = seed * 1664525u + 1013904223u;
    byte = static_cast<unsigned char>(seed >> 24);
  }
  bot.write10(kLba, kRegionBlocks, block_size, region.data());
  std::printf("storage %s on bus %u: wrote %u blocks at LBA %u (crc32 %08x)\n",
              text(storage_ids).c_str(), bus_of(storage), kRegionBlocks, kLba,
              lab::crc32(region.data(), region.size()));

  lab::Interface mouse =
      lab::open_interface(ctx, mouse_ids.first, mouse_ids.second, LIBUSB_CLASS_HID, /*protocol=*/2);
  if (!mouse.interrupt_in) lab::fail("the mouse has no interrupt IN endpoint");
  // SET_IDLE(0): the mouse reports only changes, so a read waits until it is cancelled.
  lab::check(
      libusb_control_transfer(mouse.handle.get(), 0x21, 0x0a, 0,
                              static_cast<std::uint16_t>(mouse.number), nullptr, 0, kTimeoutMs),
      "SET_IDLE(0)");
  for (int stale = 0; stale < 16; ++stale) {  // reports left from before
    unsigned char report[16];
    int n = 0;
    if (libusb_interrupt_transfer(mouse.handle.get(), mouse.interrupt_in, report, sizeof report, &n,
                                  100) != 0) {
      break;
    }
  }
  std::printf("mouse %s on bus %u\n", text(mouse_ids).c_str(), bus_of(mouse));

  lab::Interface loopback =
      lab::open_interface(ctx, loop_ids.first, loop_ids.second, LIBUSB_CLASS_VENDOR_SPEC);
  // RESET_STREAMS: the source pattern starts at byte 0 and the loopback queue is empty.
  lab::check(
      libusb_control_transfer(loopback.handle.get(), 0x40, 0x06, 0, 0, nullptr, 0, kTimeoutMs),
      "RESET_STREAMS");
  std::printf("loopback %s on bus %u\n", text(loop_ids).c_str(), bus_of(loopback));

  StorageReader reader(storage, kLba, block_size, kBlocksPerRead, region);
  loop.watch(storage_fds, [&reader] { return reader.callbacks(); });
  LoopbackTraffic traffic(loopback.handle.get());
  reader.set_other(&traffic.in_flight());
  traffic.set_other(&reader);

  constexpr int kCommands = 24, kEchoes = 48;
  constexpr std::uint64_t kSourceBytes = 2 << 20;
  int commands_before = 0, echoed_before = 0;
  std::uint64_t source_before = 0;
  auto enough = [&] {
    return failures > 0 || (reader.commands() >= commands_before + kCommands &&
                            traffic.echoed() >= echoed_before + kEchoes &&
                            traffic.source_bytes() >= source_before + kSourceBytes);
  };
  auto idle = [&] { return reader.in_flight() == 0 && traffic.in_flight() == 0; };
  int overlap_before = 0;
  auto report = [&](const char* phase) {
    const int overlap = reader.overlapping() + traffic.overlapping();
    std::printf(
        "%s: %d READ(10) of %u bytes checked, %d messages echoed, %llu source bytes "
        "checked; %d callbacks ran while the other device had transfers in flight\n",
        phase, reader.commands() - commands_before, unsigned{kBlocksPerRead} * block_size,
        traffic.echoed() - echoed_before,
        static_cast<unsigned long long>(traffic.source_bytes() - source_before),
        overlap - overlap_before);
    commands_before = reader.commands();
    echoed_before = traffic.echoed();
    source_before = traffic.source_bytes();
    overlap_before = overlap;
  };

  // ---- phase 1: a thread of the program handles events ----
  {
    EventThread events(ctx);
    traffic.start_source();
    traffic.start_echoes();
    reader.start();
    if (!wait_for(enough, deadline)) failure("phase 1 did not finish in time");
    reader.stop();
    traffic.stop_source();
    traffic.stop_echoes();
    if (!wait_for(idle, deadline)) lab::fail("FAIL phase 1: transfers still in flight");
  }
  const int overlap_1 = reader.overlapping() + traffic.overlapping();
  report("event thread (libusb_handle_events_timeout_completed)");
  if (overlap_1 == 0) failure("the two devices never had transfers in flight at the same time");

  // ---- phase 2: the program's own poll() loop, then a cancel on each device ----
  loop.compare_with_pollfds();
  traffic.start_source();
  traffic.start_echoes();
  reader.start();
  if (!loop.run(enough, deadline, true)) failure("phase 2 did not finish in time");
  // The loopback IN endpoint is the probe's now: the echoes end first.
  traffic.stop_echoes();
  if (!loop.run([&] { return traffic.echo_in_flight() == 0; }, deadline, true)) {
    lab::fail("FAIL the echoes did not end");
  }
  if (reader.overlapping() + traffic.overlapping() == overlap_1) {
    failure("in the poll loop, the two devices never had transfers in flight at the same time");
  }
  report("own poll loop (libusb_get_pollfds, notifiers, libusb_get_next_timeout)");

  Probe mouse_probe, loopback_probe;
  mouse_probe.buffer.resize(mouse.interrupt_in_size);
  libusb_fill_interrupt_transfer(
      mouse_probe.transfer.get(), mouse.handle.get(), mouse.interrupt_in, mouse_probe.buffer.data(),
      static_cast<int>(mouse_probe.buffer.size()), &Probe::on_done, &mouse_probe, kProbeTimeoutMs);
  loopback_probe.buffer.resize(512);
  libusb_fill_bulk_transfer(loopback_probe.transfer.get(), loopback.handle.get(),
                            LoopbackTraffic::kLoopIn, loopback_probe.buffer.data(), 512,
                            &Probe::on_done, &loopback_probe, kProbeTimeoutMs);
  submit(mouse_probe.transfer.get(), mouse_probe.in_flight, "mouse interrupt IN");
  submit(loopback_probe.transfer.get(), loopback_probe.in_flight, "loopback IN");
  // Both wait (nothing moves the mouse, nothing is queued) while the rest goes on.
  const auto waited = Clock::now() + std::chrono::milliseconds(300);
  loop.run([] { return false; }, std::min(waited, deadline), true);
  if (mouse_probe.done || loopback_probe.done) {
    failure("a transfer that should wait completed at once");
  }
  const int mouse_cancel = libusb_cancel_transfer(mouse_probe.transfer.get());
  const int loopback_cancel = libusb_cancel_transfer(loopback_probe.transfer.get());
  if (mouse_cancel != 0 || loopback_cancel != 0) {
    failure(std::string("libusb_cancel_transfer: mouse ") + libusb_error_name(mouse_cancel) +
            ", loopback " + libusb_error_name(loopback_cancel));
  }
  const auto cancel_start = Clock::now();
  if (!loop.run([&] { return mouse_probe.done && loopback_probe.done; }, deadline, true)) {
    lab::fail("FAIL a cancelled transfer never completed");
  }
  const double cancel_ms =
      std::chrono::duration<double, std::milli>(Clock::now() - cancel_start).count();
  std::printf(
      "cancelled: mouse interrupt IN %s, loopback bulk IN %s (within %.0f ms), while "
      "the storage and the source stream went on\n",
      libusb_error_name(mouse_probe.status), libusb_error_name(loopback_probe.status), cancel_ms);
  if (mouse_probe.status != LIBUSB_TRANSFER_CANCELLED ||
      loopback_probe.status != LIBUSB_TRANSFER_CANCELLED) {
    failure("a cancelled transfer did not end with LIBUSB_TRANSFER_CANCELLED");
  }
  reader.stop();
  traffic.stop_source();
  if (!loop.run(idle, deadline, true)) lab::fail("FAIL phase 2: transfers still in flight");
  report("until the cancels were done");
  std::printf("own poll loop: %d polls, %d slept a whole second while transfers were due\n",
              loop.polls(), loop.idle_polls());
  if (loop.idle_polls() > 0) failure("poll() slept through completions: a descriptor was missing");
  std::printf(
      "own poll loop: the stick's descriptor was ready in %d rounds; "
      "libusb_handle_events_timeout_completed ran none of its callbacks in %d of them\n",
      loop.watched_ready_rounds(), loop.unhandled_rounds());
  if (loop.watched_ready_rounds() == 0) failure("poll() never reported the stick's descriptor");
  if (loop.unhandled_rounds() > 0) {
    failure(
        "libusb_handle_events_timeout_completed left the stick's completed transfers unhandled "
        "although poll() had reported its descriptor ready");
  }

  // ---- phase 3: devices leave and come back, in the poll loop ----
  // The loopback device leaves the bus when asked (DETACH) and comes back 300 ms later; the
  // other device is unplugged and plugged in again by whoever runs this program.
  lab::check(
      libusb_control_transfer(loopback.handle.get(), 0x40, 0x07, 300, 0, nullptr, 0, kTimeoutMs),
      "DETACH");
  std::printf("waiting for %s to leave and come back\n", text(replugged_ids).c_str());
  auto back = [&] {
    for (Ids ids : {loop_ids, replugged_ids}) {
      if (hotplug.count(hotplug.left, ids) < 1 || hotplug.count(hotplug.arrived, ids) < 1) {
        return false;
      }
    }
    return true;
  };
  if (!loop.run(back, deadline, false)) {
    failure("the departures and returns did not all reach the hotplug callbacks");
  }
  // A second report of either would come soon after the first.
  loop.run([] { return false; }, std::min(Clock::now() + std::chrono::seconds(1), deadline), false);
  for (Ids ids : {loop_ids, replugged_ids}) {
    if (hotplug.count(hotplug.left, ids) != 1 || hotplug.count(hotplug.arrived, ids) != 1) {
      failure("more than one departure or arrival of " + text(ids));
    }
  }
  for (auto handle : {loop_handle, replugged_handle}) {
    libusb_hotplug_deregister_callback(ctx, handle);
  }

  std::printf("callbacks in another thread than the one handling events: %d\n",
              wrong_thread.load());
  if (wrong_thread > 0) failure("callbacks ran outside the event-handling thread");
  std::printf("%s\n", failures == 0 ? "mixed events: all good" : "mixed events: FAILED");
  return failures == 0 ? 0 : 1;
}
