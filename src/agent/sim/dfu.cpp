// `dfu`: a USB DFU 1.1 bootloader in DFU mode (bInterfaceProtocol 2) with 256 KiB of flash,
// as many bootloaders present themselves: the DFU state machine of the specification's appendix
// A, with bwPollTimeout, and its error states for whatever a host does out of turn.
#include <algorithm>

#include "agent/sim/devices.h"

namespace usbnet::agent::sim {

namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr std::size_t kFlashSize = 256 * 1024;
constexpr std::uint16_t kTransferSize = 2048;
constexpr std::uint16_t kDetachTimeout = 1000;  // ms, in the functional descriptor
// bitCanDnload | bitCanUpload | bitManifestationTolerant; no bitWillDetach.
constexpr std::uint8_t kAttributes = 0x07;
// Programming times the device announces in bwPollTimeout: erasing the flash (with the first
// block of a download), writing one block, and manifesting the new image.
constexpr milliseconds kEraseTime{500}, kProgramTime{5}, kManifestTime{10};

constexpr std::uint8_t kClassInterface = 0x21;  // class request, recipient interface (either way)
constexpr std::uint8_t kDfuInterface = 0;
constexpr std::uint8_t kDetach = 0, kDnload = 1, kUpload = 2, kGetStatus = 3, kClrStatus = 4,
                       kGetState = 5, kAbort = 6;

enum class State : std::uint8_t {
  Idle = 2,
  DnloadSync = 3,
  DnBusy = 4,
  DnloadIdle = 5,
  ManifestSync = 6,
  Manifest = 7,
  UploadIdle = 9,
  Error = 10,
};

enum class Status : std::uint8_t { Ok = 0x00, ErrAddress = 0x08, ErrStalledPkt = 0x0f };

Bytes functional_descriptor() {
  return {9,
          0x21,
          kAttributes,
          static_cast<std::uint8_t>(kDetachTimeout),
          static_cast<std::uint8_t>(kDetachTimeout >> 8),
          static_cast<std::uint8_t>(kTransferSize),
          static_cast<std::uint8_t>(kTransferSize >> 8),
          0x10,
          0x01};
}

class DfuDevice final : public SimDevice {
 public:
  DfuDevice(boost::asio::any_io_executor executor, DeviceDescription d)
      : SimDevice(std::move(executor), std::move(d)), flash_(kFlashSize, 0xff) {}

 private:
  // Selecting the configuration or the alternate setting leaves the DFU state as it is: a host
  // finds an error, or a transfer it left unfinished, and clears or aborts it. A USB reset
  // starts the bootloader over in dfuIDLE (it has no run-time mode to go back to); the flash
  // keeps its contents.
  void restart() override {}
  void bus_reset() override {
    state_ = State::Idle;
    status_ = Status::Ok;
  }

  // No endpoints but endpoint 0.
  void serve(Endpoint&, Pending&) override {}

  ControlOutcome function_control(const wire::SetupPacket& setup,
                                  std::span<const std::uint8_t> out) override {
    // Only DFU's own requests touch the state machine.
    if ((setup.bmRequestType & 0x7f) != kClassInterface || setup.wIndex.get() != kDfuInterface) {
      return ControlOutcome::stall();
    }
    settle(Clock::now());
    const bool in = (setup.bmRequestType & 0x80) != 0;
    const std::uint16_t length = setup.wLength.get();
    const bool busy = state_ == State::DnBusy || state_ == State::Manifest;
    if (!busy) {
      switch (setup.bRequest) {
        case kGetStatus:
          if (in) return get_status();
          break;
        case kGetState:
          if (in) return ControlOutcome::done({static_cast<std::uint8_t>(state_)});
          break;
        case kClrStatus:
          if (!in && state_ == State::Error) {
            state_ = State::Idle;
            status_ = Status::Ok;
            return ControlOutcome::done();
          }
          break;
        case kAbort:
          if (!in && (state_ == State::Idle || state_ == State::DnloadIdle ||
                      state_ == State::UploadIdle)) {
            state_ = State::Idle;
            return ControlOutcome::done();
          }
          break;
        case kDnload:
          if (!in) return download(length, out);
          break;
        case kUpload:
          if (in) return upload(length);
          break;
        case kDetach:  // a run-time request: this device is in DFU mode
        default:
          break;
      }
    }
    // Anything out of turn, in the wrong direction or while the device is busy programming.
    return fail(Status::ErrStalledPkt);
  }

  // The busy states end on their own once their bwPollTimeout has passed.
  void settle(Clock::time_point now) {
    if (now < busy_until_) return;
    if (state_ == State::DnBusy) {
      state_ = State::DnloadSync;
      finished_ = true;
    } else if (state_ == State::Manifest) {
      state_ = State::ManifestSync;
      finished_ = true;
    }
  }

  // STALLs the request and enters dfuERROR; a device already there keeps its first status.
  ControlOutcome fail(Status status) {
    if (state_ != State::Error) {
      state_ = State::Error;
      status_ = status;
    }
    return ControlOutcome::stall();
  }

  // The state reported is the one the device enters once the answer is sent.
  ControlOutcome get_status() {
    milliseconds poll{0};
    if (state_ == State::DnloadSync) {
      if (block_status_ != Status::Ok) {
        state_ = State::Error;
        status_ = block_status_;
      } else if (!finished_) {
        state_ = State::DnBusy;
        poll = block_time_;
      } else {
        state_ = State::DnloadIdle;
      }
    } else if (state_ == State::ManifestSync) {
      if (!finished_) {
        state_ = State::Manifest;
        poll = kManifestTime;
      } else {
        state_ = State::Idle;  // manifestation tolerant: ready for more
      }
    }
    busy_until_ = Clock::now() + poll;
    const auto ms = static_cast<std::uint32_t>(poll.count());
    return ControlOutcome::done({static_cast<std::uint8_t>(status_), static_cast<std::uint8_t>(ms),
                                 static_cast<std::uint8_t>(ms >> 8),
                                 static_cast<std::uint8_t>(ms >> 16),
                                 static_cast<std::uint8_t>(state_), 0});
  }

  ControlOutcome download(std::uint16_t length, std::span<const std::uint8_t> data) {
    if (state_ != State::Idle && state_ != State::DnloadIdle) return fail(Status::ErrStalledPkt);
    if (length == 0) {
      // The end of the image; an empty download from dfuIDLE is out of turn.
      if (state_ == State::Idle) return fail(Status::ErrStalledPkt);
      state_ = State::ManifestSync;
      finished_ = false;
      return ControlOutcome::done();
    }
    if (length > kTransferSize || data.size() != length) return fail(Status::ErrStalledPkt);
    block_time_ = kProgramTime;
    if (state_ == State::Idle) {  // a new image: the flash is erased first
      std::fill(flash_.begin(), flash_.end(), std::uint8_t{0xff});
      image_length_ = offset_ = 0;
      block_time_ += kEraseTime;
    }
    // Blocks are written one after the other (wValue, the block number, is not an address).
    if (data.size() > kFlashSize - offset_) {
      block_status_ = Status::ErrAddress;  // reported by the next DFU_GETSTATUS
    } else {
      std::copy(data.begin(), data.end(), flash_.begin() + static_cast<std::ptrdiff_t>(offset_));
      offset_ += data.size();
      image_length_ = offset_;
      block_status_ = Status::Ok;
    }
    state_ = State::DnloadSync;
    finished_ = false;
    return ControlOutcome::done();
  }

  // The image last downloaded, block after block; a short block ends the upload.
  ControlOutcome upload(std::uint16_t length) {
    if (state_ != State::Idle && state_ != State::UploadIdle) return fail(Status::ErrStalledPkt);
    if (length == 0 || length > kTransferSize) return fail(Status::ErrStalledPkt);
    if (state_ == State::Idle) {
      offset_ = 0;
      state_ = State::UploadIdle;
    }
    const std::size_t n = std::min<std::size_t>(length, image_length_ - offset_);
    const auto begin = flash_.begin() + static_cast<std::ptrdiff_t>(offset_);
    Bytes block(begin, begin + static_cast<std::ptrdiff_t>(n));
    offset_ += n;
    if (n < length) state_ = State::Idle;
    return ControlOutcome::done(std::move(block));
  }

  Bytes flash_;
  std::size_t image_length_ = 0;  // bytes programmed since the last erase
  std::size_t offset_ = 0;        // where the next download or upload block goes
  State state_ = State::Idle;
  Status status_ = Status::Ok;
  Status block_status_ = Status::Ok;  // how programming the last block went
  bool finished_ = false;             // in a -SYNC state: the block or manifestation is done
  milliseconds block_time_{0};
  Clock::time_point busy_until_{};
};

}  // namespace

std::shared_ptr<SimDevice> make_dfu(boost::asio::any_io_executor executor) {
  DeviceDescription d;
  d.name = "dfu";
  d.speed = 2;  // full
  d.device = {0x0200, 0, 64, 0x1209, 0x0005, 0x0100, 1, 2, 3};
  d.configs = {
      {1, 0, 0x80, 50, {{kDfuInterface, 0, 0xfe, 0x01, 0x02, 4, functional_descriptor(), {}}}}};
  d.strings = {"usbnet", "DFU Bootloader", "DFU0001", "Internal Flash"};
  d.interface_descriptors[{kDfuInterface, 0x21}] = functional_descriptor();
  return std::make_shared<DfuDevice>(std::move(executor), std::move(d));
}

}  // namespace usbnet::agent::sim
