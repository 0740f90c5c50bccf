// The client's table of URBs in flight: completions paired with their URBs, IN data placed in
// the submitter's buffer, released per endpoint in the order the agent reported them; cancels
// and forgotten submitters found by the submitter's key.
#include <catch2/catch.hpp>

#include "client/urb_table.h"

using namespace usbnet;
using namespace usbnet::client;
using wire::UrbStatus;

namespace {

// Records which URBs completed, in order, with their status.
struct Completions {
  std::vector<std::pair<std::uint32_t, UrbStatus>> seen;

  Urb urb(std::uint8_t endpoint, std::span<std::uint8_t> in = {}) {
    Urb u;
    u.handle = 1;
    u.endpoint = endpoint;
    u.in = in;
    return u;
  }
  void run(client::ReadyCompletions ready) {
    for (auto& r : ready) seen.emplace_back(r.result.trans_id, r.result.status);
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
  UrbTable table;
  Completions done;
  std::vector<std::uint8_t> buffer(8);
  table.add(1, done.urb(0x81, buffer));
  const std::vector<std::uint8_t> data{1, 2, 3};
  done.run(table.on_complete(complete(1, UrbStatus::Completed, 3, data, 3)));
  CHECK(done.seen == std::vector<std::pair<std::uint32_t, UrbStatus>>{{1, UrbStatus::Completed}});
  CHECK(buffer == std::vector<std::uint8_t>{1, 2, 3, 0, 0, 0, 0, 0});
  CHECK(table.in_flight() == 0);
}

TEST_CASE("a URB cancelled behind a waiting one on its endpoint completes at once") {
  // As the kernel gives a discarded URB back while earlier ones still wait for data.
  UrbTable table;
  Completions done;
  std::vector<std::uint8_t> a(4), b(4);
  table.add(1, done.urb(0x81, a));
  table.add(2, done.urb(0x81, b));
  done.run(table.on_complete(complete(2, UrbStatus::Cancelled)));
  CHECK(done.seen == std::vector<std::pair<std::uint32_t, UrbStatus>>{{2, UrbStatus::Cancelled}});
  done.run(table.finish_locally(1, UrbStatus::TimedOut));
  CHECK(done.seen.back() == std::pair<std::uint32_t, UrbStatus>{1, UrbStatus::TimedOut});
}

TEST_CASE("a completion waits while an earlier one's data still arrives in pieces") {
  UrbTable table;
  Completions done;
  std::vector<std::uint8_t> big(8), small(2);
  table.add(1, done.urb(0x81, big));
  table.add(2, done.urb(0x81, small));
  const std::vector<std::uint8_t> first{1, 2, 3, 4}, rest{5, 6, 7, 8}, tiny{9, 9};
  done.run(table.on_complete(complete(1, UrbStatus::Completed, 8, first, 8)));
  done.run(table.on_complete(complete(2, UrbStatus::Completed, 2, tiny, 2)));
  CHECK(done.seen.empty());
  done.run(table.on_data(wire::UrbData{1, 4, rest}));
  CHECK(done.seen == std::vector<std::pair<std::uint32_t, UrbStatus>>{{1, UrbStatus::Completed},
                                                                      {2, UrbStatus::Completed}});
  CHECK(big == std::vector<std::uint8_t>{1, 2, 3, 4, 5, 6, 7, 8});
  CHECK(small == tiny);
}

TEST_CASE("other endpoints never wait for each other") {
  UrbTable table;
  Completions done;
  std::vector<std::uint8_t> big(8);
  table.add(1, done.urb(0x81, big));
  table.add(2, done.urb(0x02));
  const std::vector<std::uint8_t> first{1, 2, 3, 4};
  done.run(table.on_complete(complete(1, UrbStatus::Completed, 8, first, 8)));
  done.run(table.on_complete(complete(2, UrbStatus::Completed, 100)));
  CHECK(done.seen == std::vector<std::pair<std::uint32_t, UrbStatus>>{{2, UrbStatus::Completed}});
}

TEST_CASE("a URB finished locally absorbs the agent's late answer without writing the buffer") {
  UrbTable table;
  Completions done;
  std::vector<std::uint8_t> buffer(4);
  table.add(1, done.urb(0x81, buffer));
  done.run(table.finish_locally(1, UrbStatus::TimedOut));
  CHECK(done.seen == std::vector<std::pair<std::uint32_t, UrbStatus>>{{1, UrbStatus::TimedOut}});
  const std::vector<std::uint8_t> late{7, 7, 7, 7};
  done.run(table.on_complete(complete(1, UrbStatus::Completed, 4, late, 4)));
  CHECK(done.seen.size() == 1);
  CHECK(buffer == std::vector<std::uint8_t>(4, 0));
  CHECK(table.in_flight() == 0);
}

TEST_CASE(
    "losing the agent fails every URB once: answered ones first, the rest in submission "
    "order") {
  UrbTable table;
  Completions done;
  std::vector<std::uint8_t> big(8), b(4), c(4);
  table.add(5, done.urb(0x81, big));
  table.add(3, done.urb(0x81, b));
  table.add(9, done.urb(0x82, c));
  table.add(4, done.urb(0x01));
  const std::vector<std::uint8_t> first{1, 2, 3, 4};
  done.run(table.on_complete(complete(5, UrbStatus::Completed, 8, first, 8)));  // half here
  done.run(table.on_complete(complete(4, UrbStatus::Completed, 10)));
  REQUIRE(done.seen == std::vector<std::pair<std::uint32_t, UrbStatus>>{{4, UrbStatus::Completed}});
  done.run(table.fail_all(UrbStatus::NoDevice));
  CHECK(done.seen == std::vector<std::pair<std::uint32_t, UrbStatus>>{{4, UrbStatus::Completed},
                                                                      {5, UrbStatus::NoDevice},
                                                                      {3, UrbStatus::NoDevice},
                                                                      {9, UrbStatus::NoDevice}});
  CHECK(table.in_flight() == 0);
}

TEST_CASE("completions that do not fit their URB are protocol faults") {
  UrbTable table;
  Completions done;
  std::vector<std::uint8_t> buffer(2);
  table.add(1, done.urb(0x81, buffer));
  table.add(2, done.urb(0x01));
  const std::vector<std::uint8_t> three{1, 2, 3};
  CHECK_FALSE(table.on_complete(complete(1, UrbStatus::Completed, 3, three, 3)).has_value());
  CHECK_FALSE(table.on_complete(complete(2, UrbStatus::Completed, 3, three, 3)).has_value());
  CHECK_FALSE(table.on_complete(complete(7, UrbStatus::Completed)).has_value());
  CHECK(buffer == std::vector<std::uint8_t>(2, 0));
  // The connection is dropped for the fault: both URBs still end, once.
  done.run(table.fail_all(UrbStatus::NoDevice));
  CHECK(done.seen == std::vector<std::pair<std::uint32_t, UrbStatus>>{{1, UrbStatus::NoDevice},
                                                                      {2, UrbStatus::NoDevice}});
  CHECK(table.in_flight() == 0);

  UrbTable iso_table;
  std::vector<std::uint8_t> iso_buffer(20);
  Urb iso_in = done.urb(0x83, iso_buffer);
  iso_in.iso_lengths = {10, 10};
  iso_table.add(1, iso_in);
  wire::UrbComplete c = complete(1, UrbStatus::Completed, 0, three, 3);
  c.iso = {{UrbStatus::Completed, 2}, {UrbStatus::Completed, 2}};  // 4 bytes, 3 carried
  CHECK_FALSE(iso_table.on_complete(c).has_value());
}

TEST_CASE("a submitter's URB is found by its key until its completion is released") {
  UrbTable table;
  Completions done;
  int transfer = 0, other = 0;
  Urb urb = done.urb(0x02);
  urb.owner = &transfer;
  REQUIRE(table.add(7, urb));
  CHECK(table.find(&transfer) == 7u);
  CHECK_FALSE(table.find(&other));
  // The same transfer cannot be in flight twice.
  CHECK_FALSE(table.add(8, urb));
  CHECK_FALSE(table.contains(8));
  done.run(table.on_complete(complete(7, UrbStatus::Completed, 5)));
  CHECK_FALSE(table.find(&transfer));
  CHECK(table.add(9, urb));  // and it may go again
}

TEST_CASE("a cancel is asked for once, and the agent is told only while it has not answered") {
  UrbTable table;
  Completions done;
  int a = 0, b = 0;
  std::vector<std::uint8_t> big(8);
  Urb first = done.urb(0x81, big);
  first.owner = &a;
  Urb second = done.urb(0x81);
  second.owner = &b;
  table.add(1, first);
  table.add(2, second);
  const auto cancel = table.start_cancel(&a);
  REQUIRE(cancel);
  CHECK(cancel->trans_id == 1);
  CHECK(cancel->tell_agent);
  CHECK_FALSE(table.start_cancel(&a));  // twice: not found, as libusb says
  // The second has been answered (its data still in pieces behind the first): a cancel stands
  // but nothing is sent.
  const std::vector<std::uint8_t> half{1, 2, 3, 4};
  done.run(table.on_complete(complete(1, UrbStatus::Cancelled, 8, half, 8)));
  done.run(table.on_complete(complete(2, UrbStatus::Completed, 0)));
  CHECK(done.seen.empty());
  const auto late = table.start_cancel(&b);
  REQUIRE(late);
  CHECK_FALSE(late->tell_agent);
  const std::vector<std::uint8_t> rest{5, 6, 7, 8};
  done.run(table.on_data(wire::UrbData{1, 4, rest}));
  CHECK(done.seen == std::vector<std::pair<std::uint32_t, UrbStatus>>{{1, UrbStatus::Cancelled},
                                                                      {2, UrbStatus::Completed}});
}

TEST_CASE("a forgotten submitter's URB is reported to nobody and its buffer never written") {
  UrbTable table;
  bool called = false;
  int transfer = 0;
  std::vector<std::uint8_t> buffer(4);
  Urb urb;
  urb.owner = &transfer;
  urb.handle = 1;
  urb.endpoint = 0x81;
  urb.in = buffer;
  urb.done = [&](const UrbResult&) { called = true; };
  table.add(3, urb);
  CHECK(table.forget(&transfer) == 3u);  // the agent still works on it: the caller cancels
  CHECK_FALSE(table.find(&transfer));
  CHECK(table.landing_place(wire::Message{complete(3, UrbStatus::Cancelled, 4, {}, 4)}, 4).empty());
  const std::vector<std::uint8_t> late{7, 7, 7, 7};
  auto ready = table.on_complete(complete(3, UrbStatus::Cancelled, 4, late, 4));
  REQUIRE(ready);
  for (auto& r : *ready) {
    if (r.done) r.done(r.result);
  }
  CHECK_FALSE(called);
  CHECK(buffer == std::vector<std::uint8_t>(4, 0));
  CHECK(table.in_flight() == 0);
}

TEST_CASE("a URB whose timeout expires is cancelled at the agent once and reads TIMED_OUT") {
  UrbTable table;
  Completions done;
  std::vector<std::uint8_t> buffer(8);
  const Clock::time_point t0 = Clock::now();
  Urb urb = done.urb(0x81, buffer);
  urb.timeout_at = t0 + std::chrono::milliseconds(100);
  urb.lost_at = t0 + std::chrono::milliseconds(1100);
  table.add(1, urb);
  auto before = table.expire(t0 + std::chrono::milliseconds(50));
  CHECK(before.cancel.empty());
  CHECK(before.lost_handles.empty());
  CHECK(before.more);
  auto at = table.expire(t0 + std::chrono::milliseconds(150));
  CHECK(at.cancel == std::vector<std::uint32_t>{1});
  CHECK(at.more);                                                           // its grace runs
  CHECK(table.expire(t0 + std::chrono::milliseconds(200)).cancel.empty());  // asked once
  // The agent's true outcome: cancelled after the device moved 3 bytes.
  const std::vector<std::uint8_t> three{1, 2, 3};
  auto ready = table.on_complete(complete(1, UrbStatus::Cancelled, 3, three, 3));
  REQUIRE(ready);
  REQUIRE(ready->size() == 1);
  CHECK(ready->front().result.status == UrbStatus::TimedOut);
  CHECK(ready->front().result.actual_length == 3);
  CHECK(buffer == std::vector<std::uint8_t>{1, 2, 3, 0, 0, 0, 0, 0});
  CHECK_FALSE(table.expire(t0 + std::chrono::seconds(5)).more);
}

TEST_CASE("an agent silent past the grace loses the URB's handle, and only that handle") {
  UrbTable table;
  Completions done;
  const Clock::time_point t0 = Clock::now();
  Urb write = done.urb(0x01);
  write.timeout_at = t0 + std::chrono::milliseconds(100);
  write.lost_at = t0 + std::chrono::milliseconds(1100);
  Urb read = done.urb(0x81);  // no timeout, same handle
  Urb other = done.urb(0x81);
  other.handle = 2;
  table.add(1, write);
  table.add(2, read);
  table.add(3, other);
  CHECK(table.expire(t0 + std::chrono::milliseconds(150)).cancel.size() == 1);
  const auto late = table.expire(t0 + std::chrono::milliseconds(1200));
  CHECK(late.lost_handles == std::vector<std::uint32_t>{1});
  done.run(table.fail_handle(1, UrbStatus::NoDevice));
  CHECK(done.seen == std::vector<std::pair<std::uint32_t, UrbStatus>>{{1, UrbStatus::NoDevice},
                                                                      {2, UrbStatus::NoDevice}});
  // What the agent sends for them later is absorbed (no protocol fault); handle 2 goes on.
  done.run(table.on_complete(complete(1, UrbStatus::Completed, 5)));
  done.run(table.on_complete(complete(2, UrbStatus::Cancelled)));
  done.run(table.on_complete(complete(3, UrbStatus::Completed, 1)));
  CHECK(done.seen.size() == 3);
  CHECK(done.seen.back() == std::pair<std::uint32_t, UrbStatus>{3, UrbStatus::Completed});
  CHECK(table.in_flight() == 0);
}
