#include "agent/connection_quota.h"

#include <fmt/format.h>

namespace usbnet::agent {

// Shared with the tickets, which may outlive the quota (a session ends after the server).
struct ConnectionQuota::Ticket::Counts {
  std::size_t total = 0;
  std::map<std::string, std::size_t> per_address;
};

ConnectionQuota::Ticket::Ticket(std::shared_ptr<Counts> counts, std::string address)
    : counts_(std::move(counts)), address_(std::move(address)) {}

ConnectionQuota::Ticket& ConnectionQuota::Ticket::operator=(Ticket&& other) noexcept {
  if (this != &other) {
    give_back();
    counts_ = std::move(other.counts_);
    address_ = std::move(other.address_);
  }
  return *this;
}

ConnectionQuota::Ticket::~Ticket() { give_back(); }

void ConnectionQuota::Ticket::give_back() {
  if (!counts_) return;
  --counts_->total;
  auto it = counts_->per_address.find(address_);
  if (it != counts_->per_address.end() && --it->second == 0) counts_->per_address.erase(it);
  counts_.reset();
}

ConnectionQuota::ConnectionQuota(const ConnectionLimits& limits)
    : limits_(limits), counts_(std::make_shared<Ticket::Counts>()) {}

std::variant<ConnectionQuota::Ticket, ConnectionQuota::Refused> ConnectionQuota::admit(
    const std::string& address) {
  if (counts_->total >= limits_.max_connections) {
    return Refused{
        fmt::format("the agent has its maximum of {} client connections "
                    "(--max-connections); try again later",
                    limits_.max_connections)};
  }
  std::size_t& from_address = counts_->per_address[address];
  if (from_address >= limits_.max_per_address) {
    return Refused{
        fmt::format("this address has the agent's maximum of {} connections from one "
                    "address (--max-connections-per-address)",
                    limits_.max_per_address)};
  }
  ++from_address;
  ++counts_->total;
  return Ticket(counts_, address);
}

std::size_t ConnectionQuota::open() const { return counts_->total; }

std::size_t ConnectionQuota::open_from(const std::string& address) const {
  auto it = counts_->per_address.find(address);
  return it == counts_->per_address.end() ? 0 : it->second;
}

}  // namespace usbnet::agent
