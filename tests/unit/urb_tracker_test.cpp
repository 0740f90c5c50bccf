// The client's trans_id table: completions paired with their URBs, IN data placed in the
// submitter's buffer, and released per endpoint in the order the agent reported them.
#include <catch2/catch.hpp>

#include "client/urb_tracker.h"

using namespace usbnet;
using namespace usbnet::client;
using wire::UrbStatus;

namespace {

// Records which URBs completed, in order, with their status.
struct Completions {
  std::vector<std::pair<std::uint32_t, UrbStatus>> seen;

  TrackedUrb urb(std::uint8_t endpoint, std::span<std::uint8_t> in = {}) {
    TrackedUrb u;
    u.handle = 1;
    u.endpoint = endpoint;
    u.in = in;
    return u;
  }
  void run(client::ReadyCompletions ready) {
    for (auto& r : ready) seen.emplace_back(r.trans_id, r.result.status);
  }
  void run(Expected<client::ReadyCompletions, std::string> ready) {
    REQUIRE(ready.has_value());
    run(std::move(*ready));
  }
};

wire::UrbComplete complete(std::uint32_t trans_id, UrbStatus status, std::uint32_t actual = 0,
                           wire::ByteView payload = {}, std::uint32_t data_len = 0) {
  wire::UrbComplete c;
  c.trans_id = trans_id;
  c.status = status;
  c.actual_length = actual;
  c.data_len = data_len;
  c.payload = payload;
  return c;
}

}  // namespace

TEST_CASE("a completion is released at once and its IN data lands in the buffer") {
  UrbTracker tracker;
  Completions done;
  std::vector<std::uint8_t> buffer(8);
  tracker.add(1, done.urb(0x81, buffer));
  const std::vector<std::uint8_t> data{1, 2, 3};
  done.run(tracker.on_complete(complete(1, UrbStatus::Completed, 3, data, 3)));
  CHECK(done.seen == std::vector<std::pair<std::uint32_t, UrbStatus>>{{1, UrbStatus::Completed}});
  CHECK(buffer == std::vector<std::uint8_t>{1, 2, 3, 0, 0, 0, 0, 0});
  CHECK(tracker.in_flight() == 0);
}

TEST_CASE("a URB cancelled behind a waiting one on its endpoint completes at once") {
  // As the kernel gives a discarded URB back while earlier ones still wait for data.
  UrbTracker tracker;
  Completions done;
  std::vector<std::uint8_t> a(4), b(4);
  tracker.add(1, done.urb(0x81, a));
  tracker.add(2, done.urb(0x81, b));
  done.run(tracker.on_complete(complete(2, UrbStatus::Cancelled)));
  CHECK(done.seen == std::vector<std::pair<std::uint32_t, UrbStatus>>{{2, UrbStatus::Cancelled}});
  done.run(tracker.finish_locally(1, UrbStatus::TimedOut));
  CHECK(done.seen.back() == std::pair<std::uint32_t, UrbStatus>{1, UrbStatus::TimedOut});
}

TEST_CASE("a completion waits while an earlier one's data still arrives in pieces") {
  UrbTracker tracker;
  Completions done;
  std::vector<std::uint8_t> big(8), small(2);
  tracker.add(1, done.urb(0x81, big));
  tracker.add(2, done.urb(0x81, small));
  const std::vector<std::uint8_t> first{1, 2, 3, 4}, rest{5, 6, 7, 8}, tiny{9, 9};
  done.run(tracker.on_complete(complete(1, UrbStatus::Completed, 8, first, 8)));
  done.run(tracker.on_complete(complete(2, UrbStatus::Completed, 2, tiny, 2)));
  CHECK(done.seen.empty());
  done.run(tracker.on_data(wire::UrbData{1, 4, rest}));
  CHECK(done.seen == std::vector<std::pair<std::uint32_t, UrbStatus>>{{1, UrbStatus::Completed},
                                                                      {2, UrbStatus::Completed}});
  CHECK(big == std::vector<std::uint8_t>{1, 2, 3, 4, 5, 6, 7, 8});
  CHECK(small == tiny);
}

TEST_CASE("other endpoints never wait for each other") {
  UrbTracker tracker;
  Completions done;
  std::vector<std::uint8_t> big(8);
  tracker.add(1, done.urb(0x81, big));
  tracker.add(2, done.urb(0x02));
  const std::vector<std::uint8_t> first{1, 2, 3, 4};
  done.run(tracker.on_complete(complete(1, UrbStatus::Completed, 8, first, 8)));
  done.run(tracker.on_complete(complete(2, UrbStatus::Completed, 100)));
  CHECK(done.seen == std::vector<std::pair<std::uint32_t, UrbStatus>>{{2, UrbStatus::Completed}});
}

TEST_CASE("a URB finished locally absorbs the agent's late answer without writing the buffer") {
  UrbTracker tracker;
  Completions done;
  std::vector<std::uint8_t> buffer(4);
  tracker.add(1, done.urb(0x81, buffer));
  done.run(tracker.finish_locally(1, UrbStatus::TimedOut));
  CHECK(done.seen == std::vector<std::pair<std::uint32_t, UrbStatus>>{{1, UrbStatus::TimedOut}});
  const std::vector<std::uint8_t> late{7, 7, 7, 7};
  done.run(tracker.on_complete(complete(1, UrbStatus::Completed, 4, late, 4)));
  CHECK(done.seen.size() == 1);
  CHECK(buffer == std::vector<std::uint8_t>(4, 0));
  CHECK(tracker.in_flight() == 0);
}

TEST_CASE(
    "losing the agent fails every URB once: answered ones first, the rest in submission "
    "order") {
  UrbTracker tracker;
  Completions done;
  std::vector<std::uint8_t> big(8), b(4), c(4);
  tracker.add(5, done.urb(0x81, big));
  tracker.add(3, done.urb(0x81, b));
  tracker.add(9, done.urb(0x82, c));
  tracker.add(4, done.urb(0x01));
  const std::vector<std::uint8_t> first{1, 2, 3, 4};
  done.run(tracker.on_complete(complete(5, UrbStatus::Completed, 8, first, 8)));  // half here
  done.run(tracker.on_complete(complete(4, UrbStatus::Completed, 10)));
  REQUIRE(done.seen == std::vector<std::pair<std::uint32_t, UrbStatus>>{{4, UrbStatus::Completed}});
  done.run(tracker.fail_all(UrbStatus::NoDevice));
  CHECK(done.seen == std::vector<std::pair<std::uint32_t, UrbStatus>>{{4, UrbStatus::Completed},
                                                                      {5, UrbStatus::NoDevice},
                                                                      {3, UrbStatus::NoDevice},
                                                                      {9, UrbStatus::NoDevice}});
  CHECK(tracker.in_flight() == 0);
}

TEST_CASE("completions that do not fit their URB are protocol faults") {
  UrbTracker tracker;
  Completions done;
  std::vector<std::uint8_t> buffer(2);
  tracker.add(1, done.urb(0x81, buffer));
  tracker.add(2, done.urb(0x01));
  const std::vector<std::uint8_t> three{1, 2, 3};
  CHECK_FALSE(tracker.on_complete(complete(1, UrbStatus::Completed, 3, three, 3)).has_value());
  CHECK_FALSE(tracker.on_complete(complete(2, UrbStatus::Completed, 3, three, 3)).has_value());
  CHECK_FALSE(tracker.on_complete(complete(7, UrbStatus::Completed)).has_value());
  CHECK(buffer == std::vector<std::uint8_t>(2, 0));
  // The connection is dropped for the fault: both URBs still end, once.
  done.run(tracker.fail_all(UrbStatus::NoDevice));
  CHECK(done.seen == std::vector<std::pair<std::uint32_t, UrbStatus>>{{1, UrbStatus::NoDevice},
                                                                      {2, UrbStatus::NoDevice}});
  CHECK(tracker.in_flight() == 0);

  UrbTracker iso_tracker;
  std::vector<std::uint8_t> iso_buffer(20);
  TrackedUrb iso_in = done.urb(0x83, iso_buffer);
  iso_in.iso_lengths = {10, 10};
  iso_tracker.add(1, iso_in);
  wire::UrbComplete c = complete(1, UrbStatus::Completed, 0, three, 3);
  c.iso = {{UrbStatus::Completed, 2}, {UrbStatus::Completed, 2}};  // 4 bytes, 3 carried
  CHECK_FALSE(iso_tracker.on_complete(c).has_value());
}
