// What one client's URBs may make the agent hold (pure logic).
#include <catch2/catch.hpp>
#include <vector>

#include "agent/client_budget.h"

using usbnet::agent::ClientBudget;
using usbnet::agent::ClientLimits;

namespace {
ClientLimits limits() {
  ClientLimits l;
  l.max_urbs = 4;
  l.max_urb_memory = 1000;
  l.max_send_queue = 5000;
  return l;
}
}  // namespace

TEST_CASE("URBs are refused past the count and the memory of the client's limits") {
  ClientBudget budget(limits());
  CHECK_FALSE(budget.refuse_urb(3, 1000));
  const auto count = budget.refuse_urb(4, 1);
  REQUIRE(count);
  CHECK(*count == "the client has 4 URBs unanswered (--max-urbs 4)");
  budget.reserve(600);
  CHECK_FALSE(budget.refuse_urb(1, 400));
  REQUIRE(budget.refuse_urb(1, 401));
  CHECK(budget.refuse_urb(1, 401)->find("--max-urb-memory") != std::string::npos);
  budget.unreserve(600);
  CHECK(budget.bytes() == 0);
}

TEST_CASE("a completion keeps its URB's charge until it is written") {
  ClientBudget budget(limits());
  budget.reserve(800);
  auto payload = std::make_shared<int>(7);
  std::weak_ptr<int> watch = payload;
  auto keepalive = budget.until_sent(std::move(payload), 800);
  CHECK(budget.bytes() == 800);
  CHECK(budget.unsent_completions() == 1);
  CHECK(budget.refuse_urb(0, 300));  // the unsent completion still holds its bytes
  CHECK_FALSE(watch.expired());
  keepalive.reset();  // written
  CHECK(watch.expired());
  CHECK(budget.bytes() == 0);
  CHECK(budget.unsent_completions() == 0);
  CHECK_FALSE(budget.refuse_urb(0, 300));
}

TEST_CASE("reading stops while answers pile up unread, in bytes or in completions") {
  ClientBudget budget(limits());
  CHECK_FALSE(budget.throttle(5000));
  REQUIRE(budget.throttle(5001));
  CHECK(budget.throttle(5001)->find("--max-send-queue") != std::string::npos);
  std::vector<std::shared_ptr<const void>> unsent;
  for (int i = 0; i < 5; ++i) unsent.push_back(budget.until_sent(nullptr, 0));
  REQUIRE(budget.throttle(0));
  CHECK(*budget.throttle(0) == "5 completions wait for the client to read them (--max-urbs 4)");
  int resumed = 0;
  budget.on_unthrottled([&] { ++resumed; });
  unsent.pop_back();
  CHECK_FALSE(budget.throttle(0));
  CHECK(resumed == 1);  // once, when the count falls back to the limit
  unsent.pop_back();
  CHECK(resumed == 1);
}
