#include "agent/client_budget.h"

#include <fmt/format.h>

namespace usbnet::agent {

struct ClientBudget::Charge {
  Charge(std::shared_ptr<const void> p, std::shared_ptr<Counts> c, std::size_t b)
      : payload(std::move(p)), counts(std::move(c)), bytes(b) {
    ++counts->unsent;
  }
  Charge(const Charge&) = delete;
  Charge& operator=(const Charge&) = delete;
  ~Charge() {
    counts->bytes -= bytes;
    if (counts->unsent-- == counts->max_unsent + 1 && counts->resume) counts->resume();
  }
  std::shared_ptr<const void> payload;
  std::shared_ptr<Counts> counts;
  std::size_t bytes;
};

ClientBudget::ClientBudget(const ClientLimits& limits)
    : limits_(limits), counts_(std::make_shared<Counts>()) {
  counts_->max_unsent = limits_.max_urbs;
}

std::optional<std::string> ClientBudget::refuse_urb(std::size_t unanswered,
                                                    std::size_t cost) const {
  if (unanswered >= limits_.max_urbs) {
    return fmt::format("the client has {} URBs unanswered (--max-urbs {})", unanswered,
                       limits_.max_urbs);
  }
  const std::size_t held = counts_->bytes.load();
  if (held + cost > limits_.max_urb_memory) {
    return fmt::format(
        "the client's URBs hold {} KiB and this one needs {} KiB more (--max-urb-memory {} KiB)",
        held >> 10, cost >> 10, limits_.max_urb_memory >> 10);
  }
  return std::nullopt;
}

std::shared_ptr<const void> ClientBudget::until_sent(std::shared_ptr<const void> payload,
                                                     std::size_t cost) {
  return std::make_shared<Charge>(std::move(payload), counts_, cost);
}

std::optional<std::string> ClientBudget::throttle(std::size_t queued) const {
  if (queued > limits_.max_send_queue) {
    return fmt::format(
        "{} KiB of answers wait for the client to read them (--max-send-queue {} "
        "KiB)",
        queued >> 10, limits_.max_send_queue >> 10);
  }
  // Small completions cost the agent far more than their bytes on the wire.
  const std::size_t unsent = counts_->unsent.load();
  if (unsent > limits_.max_urbs) {
    return fmt::format("{} completions wait for the client to read them (--max-urbs {})", unsent,
                       limits_.max_urbs);
  }
  return std::nullopt;
}

}  // namespace usbnet::agent
