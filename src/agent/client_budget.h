// What one client's URBs make the agent hold, against the client's limits (limits.h): URBs on
// the device, the bytes of their buffers, and their completions until they have been written
// to the client. Pure logic on the io thread; the charges a completion carries end on whatever
// thread drops it.
#pragma once

#include <atomic>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "agent/limits.h"

namespace usbnet::agent {

class ClientBudget {
 public:
  explicit ClientBudget(const ClientLimits& limits);
  // Called (on the thread that drops a written completion) when the unsent completions fall
  // back to the limit, so that the driver reads again (FramedStream::input_wanted). Set it
  // before the first completion.
  void on_unthrottled(std::function<void()> resume) { counts_->resume = std::move(resume); }

  // Why a new URB of `cost` bytes cannot be taken while `unanswered` URBs of the client are
  // not yet completed, or nullopt. (A refusal completes it at once, with ERROR.)
  std::optional<std::string> refuse_urb(std::size_t unanswered, std::size_t cost) const;
  // A URB taken, and one refused after it was taken (before it reached the device).
  void reserve(std::size_t cost) { counts_->bytes += cost; }
  void unreserve(std::size_t cost) { counts_->bytes -= cost; }
  // A completion's keepalive: holds `payload`, the URB's `cost` bytes and one unsent completion
  // until the stream has written (or dropped) the completion.
  std::shared_ptr<const void> until_sent(std::shared_ptr<const void> payload, std::size_t cost);

  // Backpressure: why the agent should stop reading the client's requests while `queued`
  // bytes wait to be written to it (completions nobody reads pile up), or nullopt to read on.
  std::optional<std::string> throttle(std::size_t queued) const;

  std::size_t bytes() const { return counts_->bytes.load(); }
  std::size_t unsent_completions() const { return counts_->unsent.load(); }

 private:
  struct Counts {
    std::atomic<std::size_t> bytes{0};
    std::atomic<std::size_t> unsent{0};
    std::size_t max_unsent = 0;
    std::function<void()> resume;
  };
  struct Charge;
  ClientLimits limits_;
  std::shared_ptr<Counts> counts_;
};

}  // namespace usbnet::agent
