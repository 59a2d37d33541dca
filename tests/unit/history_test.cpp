// Resume after a reconnect, in the library: the history ring, its epoch, join answers, and
// exactly-once delivery across the replay/live boundary, on one node and through a bus.
#include "envelope_field.hpp"
#include "jthread.hpp"

#include <uniws/factory.hpp>
#include <uniws/history.hpp>
#include <uniws/manager.hpp>
#include <uniws/testing.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

using uniws::agent_event;
using uniws::agent_event_type;
using uniws::join_status;
using uniws::json_text;
using uniws::resume_point;
using uniws::testing::memory_connection;
using manager = uniws::unified_manager<memory_connection>;
using uniws_test::field;

namespace {

std::shared_ptr<memory_connection> make_connection(uniws::connection_id id) {
  return std::make_shared<memory_connection>(
      id, uniws::send_queue_limits{.max_messages = 1 << 20, .max_bytes = 1 << 30});
}

agent_event thinking(std::string thread) {
  return {agent_event_type::agent_thinking, std::move(thread), "r", json_text::object()};
}

// What a client read: "type seq" per frame, "joined S" / "joined S recovered K" / "joined S lost".
std::vector<std::string> frames(const memory_connection& c) {
  std::vector<std::string> out;
  for (const auto& m : c.received()) {
    const std::string text(m.text());
    std::string line = field(text, "type") + " " + field(text, "seq");
    if (field(text, "recovered") == "true") line += " recovered " + field(text, "replayed");
    if (field(text, "recovered") == "false") line += " lost";
    out.push_back(line);
  }
  return out;
}

uniws::history_epoch epoch_of(const memory_connection& c) {
  for (const auto& m : c.received())
    if (field(std::string(m.text()), "type") == "joined")
      return *uniws::history_epoch::parse(field(std::string(m.text()), "epoch"));
  FAIL("no joined answer");
  return {};
}

}  // namespace

TEST_CASE("an epoch is 128 random bits with a 32-hex-digit wire form") {
  const auto a = uniws::history_epoch::random(), b = uniws::history_epoch::random();
  CHECK_FALSE(a == b);
  CHECK(a.to_string().size() == 32);
  CHECK(uniws::history_epoch::parse(a.to_string()) == a);
  CHECK(uniws::history_epoch::parse(std::string(32, 'F')) ==
        uniws::history_epoch::parse(std::string(32, 'f')));
  CHECK_FALSE(uniws::history_epoch::parse(a.to_string().substr(1)));
  CHECK_FALSE(uniws::history_epoch::parse(std::string(31, '0') + "g"));
}

TEST_CASE("a join is answered with joined, epoch and the last seq, before any event of the thread",
          "[proto-R1]") {
  manager m;
  auto c = make_connection(1);
  REQUIRE(m.add_connection(c));
  m.emit(thinking("t1"));
  m.emit(thinking("t1"));
  const auto r = m.join_thread(1, "t1");
  CHECK(r.status == join_status::joined);
  CHECK(r.seq == 2);
  m.emit(thinking("t1"));
  CHECK(frames(*c) == std::vector<std::string>{"joined 2", "agent_thinking 3"});
  CHECK(field(std::string(c->received()[0].text()), "epoch") == r.epoch.to_string());
  CHECK(field(std::string(c->received()[0].text()), "thread_id") == "t1");
}

TEST_CASE("a resume replays exactly the thread's missed events, in order, then goes live", "[proto-R2]") {
  manager m;
  auto first = make_connection(1);
  REQUIRE(m.add_connection(first));
  REQUIRE(m.join_thread(1, "t1"));
  m.emit(thinking("t1"));  // 1
  m.emit(thinking("t2"));  // 2: another thread, not replayed to t1
  const auto epoch = epoch_of(*first);
  REQUIRE(m.remove_connection(1));                     // the tab drops after seq 1
  for (int i = 0; i < 3; ++i) m.emit(thinking("t1"));  // 3, 4, 5: missed
  m.emit(thinking("t2"));                              // 6

  auto again = make_connection(2);
  REQUIRE(m.add_connection(again));
  const auto r = m.join_thread(2, "t1", resume_point{epoch, 1});
  CHECK(r.status == join_status::recovered);
  CHECK(r.replayed == 3);
  m.emit(thinking("t1"));  // 7: live
  CHECK(frames(*again) == std::vector<std::string>{"agent_thinking 3", "agent_thinking 4", "agent_thinking 5",
                                                   "joined 6 recovered 3", "agent_thinking 7"});
  // Exactly as first sent: the replay shares the buffers of the original fan-out.
  CHECK(m.get_stats().events_replayed == 3);
  CHECK(m.get_stats().resumes_recovered == 1);
  CHECK(m.get_stats().history_events == 7);
}

TEST_CASE("a resume that cannot be complete replays nothing and says not recovered", "[proto-R3]") {
  uniws::manager_options options;
  options.history.max_events = 4;
  manager m(options);
  auto c = make_connection(1);
  REQUIRE(m.add_connection(c));
  REQUIRE(m.join_thread(1, "t1"));
  const auto epoch = epoch_of(*c);
  REQUIRE(m.remove_connection(1));
  for (int i = 0; i < 10; ++i) m.emit(thinking("t1"));  // the ring holds 7..10

  auto resume_with = [&](uniws::connection_id id, resume_point from) {
    auto d = make_connection(id);
    REQUIRE(m.add_connection(d));
    const auto r = m.join_thread(id, "t1", from);
    REQUIRE(m.remove_connection(id));
    return std::pair(r, frames(*d));
  };
  SECTION("the ring no longer holds an event after after_seq") {
    const auto [r, got] = resume_with(2, {epoch, 5});
    CHECK(r.status == join_status::not_recovered);
    CHECK(got == std::vector<std::string>{"joined 10 lost"});
    CHECK(resume_with(3, {epoch, 6}).first.status == join_status::recovered);  // 7..10 are all held
    CHECK(m.get_stats().resumes_not_recovered == 1);
    CHECK(m.get_stats().resumes_recovered == 1);
  }
  SECTION("another epoch: the server restarted") {
    const auto [r, got] = resume_with(2, {uniws::history_epoch::random(), 9});
    CHECK(got == std::vector<std::string>{"joined 10 lost"});
  }
  SECTION("a seq from the future") {
    CHECK(resume_with(2, {epoch, 11}).second == std::vector<std::string>{"joined 10 lost"});
  }
  SECTION("already joined: live events flow, a replay would repeat them") {
    auto d = make_connection(2);
    REQUIRE(m.add_connection(d));
    REQUIRE(m.join_thread(2, "t1"));
    CHECK(m.join_thread(2, "t1", resume_point{epoch, 8}).status == join_status::not_recovered);
    CHECK(frames(*d) == std::vector<std::string>{"joined 10", "joined 10 lost"});
  }
  SECTION("events older than max_age are gone") {
    uniws::manager_options aged;
    aged.history.max_age = std::chrono::seconds(0);
    manager n(aged);
    REQUIRE(n.add_connection(make_connection(1)));
    REQUIRE(n.join_thread(1, "t1"));
    n.emit(thinking("t1"));
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    auto d = make_connection(2);
    REQUIRE(n.add_connection(d));
    CHECK(n.join_thread(2, "t1", resume_point{n.join_thread(1, "t1").epoch, 0}).status ==
          join_status::not_recovered);
  }
  CHECK(m.get_stats().history_events <= 4);
}

TEST_CASE("history is bounded in bytes too, and off with max_events 0", "[proto-R4]") {
  uniws::manager_options options;
  options.history.max_bytes = 1000;
  manager m(options);
  const std::string pad(200, 'x');
  for (int i = 0; i < 50; ++i)
    m.emit(
        {agent_event_type::agent_thinking, "t1", "r", json_text::object({{"pad", json_text::string(pad)}})});
  const auto s = m.get_stats();
  CHECK(s.history_bytes <= 1000);
  CHECK(s.history_events >= 3);

  uniws::manager_options off;
  off.history.max_events = 0;
  manager n(off);
  auto c = make_connection(1);
  REQUIRE(n.add_connection(c));
  const auto epoch = n.join_thread(1, "t1").epoch;
  n.emit(thinking("t1"));
  CHECK(n.join_thread(1, "t2", resume_point{epoch, 0}).status == join_status::not_recovered);
  CHECK(n.get_stats().history_events == 0);
}

// The exactly-once promise under fire: one agent emits on the thread as fast as it can while
// clients drop and resume from where they were. Every resumed client must read the thread's
// seqs after its resume point as one contiguous run, each once, in order.
TEST_CASE("resume races a hot emitter: every seq once, in order, across the replay/live boundary",
          "[proto-R2]") {
  uniws::manager_options options;
  options.history.max_events = 1 << 16;  // a descheduled test thread must not see the ring pass it by
  options.history.max_bytes = std::size_t{1} << 30;
  manager m(options);
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> emitted{0};
  uniws_test::jthread agent([&] {
    while (!stop.load(std::memory_order_relaxed))
      emitted.store(m.emit(thinking("t1")), std::memory_order_relaxed);
  });
  struct stop_on_exit {  // a failed REQUIRE leaves the scope: stop the agent before joining it
    std::atomic<bool>& stop;
    ~stop_on_exit() { stop = true; }
  } stopper{stop};
  auto watcher = make_connection(1000);
  REQUIRE(m.add_connection(watcher));
  const auto epoch = m.join_thread(1000, "t1").epoch;
  REQUIRE(m.remove_connection(1000));
  std::mt19937 rng(7);
  int checked = 0, passed_by = 0;
  for (uniws::connection_id id = 1; id <= 300; ++id) {
    while (emitted.load() < 50) std::this_thread::yield();
    const std::uint64_t last = emitted.load();
    const std::uint64_t after = last - rng() % 40;  // the client had read up to here
    auto c = make_connection(id);
    REQUIRE(m.add_connection(c));
    const auto r = m.join_thread(id, "t1", resume_point{epoch, after});
    // Let live events follow the replay for a moment, then drop.
    const std::uint64_t until = emitted.load() + 20;
    while (emitted.load() < until) std::this_thread::yield();
    REQUIRE(m.remove_connection(id));
    if (r.status != join_status::recovered) {
      // Only if this thread was descheduled while the agent emitted a whole ring past it.
      REQUIRE(r.seq - after > options.history.max_events);
      ++passed_by;
      continue;
    }
    std::uint64_t expect = after + 1;
    std::size_t replayed = 0;
    bool live = false;
    for (const auto& msg : c->received()) {
      const std::string text(msg.text());
      if (field(text, "type") == "joined") {
        CHECK(std::stoull(field(text, "seq")) == expect - 1);  // the seq it went live at
        CHECK(replayed == r.replayed);
        live = true;
        continue;
      }
      REQUIRE(std::stoull(field(text, "seq")) == expect);
      ++expect;
      if (!live) ++replayed;
    }
    CHECK(live);
    ++checked;
  }
  stop = true;
  agent.join();
  CHECK(checked + passed_by == 300);
  CHECK(checked >= 200);  // the boundary was crossed often enough to mean something
}

TEST_CASE("through a bus: a client that lost node A resumes on node B, exactly once", "[proto-R4]") {
  using node_factory = uniws::manager_factory<memory_connection, uniws::always_available,
                                              uniws::testing::memory_bus::endpoint>;
  uniws::testing::memory_bus bus;
  node_factory a(uniws::factory_options{}, {}, bus.node()), b(uniws::factory_options{}, {}, bus.node());
  const uniws::basic_user_context alice("alice");
  auto on_a = make_connection(1), runner_on_b = make_connection(2);
  REQUIRE(a.get_websocket_manager(alice)->add_connection(on_a));
  REQUIRE(a.get_websocket_manager(alice)->join_thread(1, "t1").status == join_status::pending);
  REQUIRE(b.get_websocket_manager(alice)->add_connection(runner_on_b));
  REQUIRE(b.get_websocket_manager(alice)->join_thread(2, "t1"));
  const auto epoch = epoch_of(*on_a);
  auto run = b.get_websocket_manager(alice);
  run->emit(thinking("t1"));  // 1
  run->emit(thinking("t1"));  // 2
  bus.pump();
  REQUIRE(a.get_websocket_manager(alice)->remove_connection(1));  // node A's client drops after 2
  run->emit(thinking("t1"));                                      // 3
  bus.pump();
  run->emit(thinking("t1"));  // 4: published, still in flight to the nodes when the client resumes

  auto on_b = make_connection(3);
  REQUIRE(b.get_websocket_manager(alice)->add_connection(on_b));
  REQUIRE(b.get_websocket_manager(alice)->join_thread(3, "t1", resume_point{epoch, 2}));
  bus.pump();                 // 4 arrives live: the answer already replayed it
  run->emit(thinking("t1"));  // 5
  bus.pump();
  CHECK(frames(*on_b) == std::vector<std::string>{"agent_thinking 3", "agent_thinking 4",
                                                  "joined 4 recovered 2", "agent_thinking 5"});

  SECTION("the store lost its history: a new epoch, not recovered") {
    bus.lose_history();
    auto later = make_connection(4);
    REQUIRE(b.get_websocket_manager(alice)->add_connection(later));
    REQUIRE(b.get_websocket_manager(alice)->join_thread(4, "t1", resume_point{epoch, 4}));
    REQUIRE(frames(*later).size() == 1);
    CHECK(frames(*later)[0].ends_with(" lost"));
    CHECK(epoch_of(*later) != epoch);
  }
  SECTION("the store is down: this node answers alone, not recovered") {
    bus.set_down(true);
    auto later = make_connection(4);
    REQUIRE(b.get_websocket_manager(alice)->add_connection(later));
    REQUIRE(b.get_websocket_manager(alice)->join_thread(4, "t1", resume_point{epoch, 4}));
    CHECK(frames(*later) == std::vector<std::string>{"joined 5 lost"});
  }
}
