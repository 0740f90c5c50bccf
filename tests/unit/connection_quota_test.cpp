// The agent's count of client connections, in total and per address (pure logic).
#include <catch2/catch.hpp>
#include <optional>
#include <vector>

#include "agent/connection_quota.h"

using usbnet::agent::ConnectionLimits;
using usbnet::agent::ConnectionQuota;

namespace {
ConnectionLimits limits(std::size_t total, std::size_t per_address) {
  ConnectionLimits l;
  l.max_connections = total;
  l.max_per_address = per_address;
  return l;
}
bool admitted(const std::variant<ConnectionQuota::Ticket, ConnectionQuota::Refused>& r) {
  return std::holds_alternative<ConnectionQuota::Ticket>(r);
}
}  // namespace

TEST_CASE("connections are capped per address, and a ticket's end frees its place") {
  ConnectionQuota quota(limits(10, 2));
  std::vector<ConnectionQuota::Ticket> held;
  for (int i = 0; i < 2; ++i) {
    auto r = quota.admit("10.0.0.1");
    REQUIRE(admitted(r));
    held.push_back(std::move(std::get<ConnectionQuota::Ticket>(r)));
  }
  auto third = quota.admit("10.0.0.1");
  REQUIRE_FALSE(admitted(third));
  CHECK(std::get<ConnectionQuota::Refused>(third).reason.find("--max-connections-per-address") !=
        std::string::npos);
  CHECK(admitted(quota.admit("10.0.0.2")));  // its ticket ends at once
  CHECK(quota.open() == 2);
  CHECK(quota.open_from("10.0.0.1") == 2);
  CHECK(quota.open_from("10.0.0.2") == 0);
  held.pop_back();
  CHECK(quota.open_from("10.0.0.1") == 1);
  CHECK(admitted(quota.admit("10.0.0.1")));
}

TEST_CASE("connections are capped in total") {
  ConnectionQuota quota(limits(3, 3));
  std::vector<ConnectionQuota::Ticket> held;
  for (const char* address : {"a", "b", "c"}) {
    auto r = quota.admit(address);
    REQUIRE(admitted(r));
    held.push_back(std::move(std::get<ConnectionQuota::Ticket>(r)));
  }
  auto fourth = quota.admit("d");
  REQUIRE_FALSE(admitted(fourth));
  CHECK(std::get<ConnectionQuota::Refused>(fourth).reason.find("--max-connections") !=
        std::string::npos);
  // Moving a ticket keeps one place; assigning over one frees the old place.
  ConnectionQuota::Ticket moved = std::move(held[0]);
  CHECK(quota.open() == 3);
  moved = std::move(held[1]);
  CHECK(quota.open() == 2);
  CHECK(quota.open_from("a") == 0);
  CHECK(quota.open_from("b") == 1);
}

TEST_CASE("tickets may outlive their quota") {
  std::optional<ConnectionQuota::Ticket> ticket;
  {
    ConnectionQuota quota(limits(1, 1));
    auto r = quota.admit("x");
    REQUIRE(admitted(r));
    ticket = std::move(std::get<ConnectionQuota::Ticket>(r));
  }
  ticket.reset();  // no crash, no leak (valgrind and the sanitizers check)
  SUCCEED("the ticket ended after its quota");
}
