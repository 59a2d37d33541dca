#include "envelope_field.hpp"
#include "jthread.hpp"

#include <uniws/factory.hpp>
#include <uniws/manager.hpp>
#include <uniws/testing.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <memory>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using uniws::json_text;
using uniws::testing::memory_connection;
using manager = uniws::unified_manager<memory_connection>;

namespace {

std::shared_ptr<memory_connection> make_connection(uniws::connection_id id,
                                                   uniws::send_queue_limits limits = {}) {
  return std::make_shared<memory_connection>(id, limits);
}

using uniws_test::field;

struct recording_sink {
  std::vector<uniws::agent_event>* events;
  void emit(uniws::agent_event e) { events->push_back(std::move(e)); }
};

const std::vector<std::string> five_events = {"agent_started", "agent_thinking", "tool_executing",
                                              "tool_completed", "agent_completed"};

}  // namespace

TEST_CASE("connections join threads and receive only what is sent to them") {
  manager m;
  auto a = make_connection(1), b = make_connection(2), c = make_connection(3);
  CHECK(m.add_connection(a));
  CHECK(m.add_connection(b));
  CHECK(m.add_connection(c));
  CHECK(m.add_connection(make_connection(2)).status == uniws::add_status::duplicate_id);
  CHECK(m.add_connection(nullptr).status == uniws::add_status::null_connection);
  CHECK(m.join_thread(1, "t1"));
  CHECK(m.join_thread(2, "t1"));
  CHECK(m.join_thread(2, "t2"));
  CHECK(m.join_thread(2, "t2"));                         // joining again is harmless
  CHECK_FALSE(m.join_thread(99, "t1"));                  // unknown connection
  CHECK_FALSE(m.join_thread(1, ""));                     // empty thread id
  CHECK_FALSE(m.join_thread(1, std::string(129, 'x')));  // over-long thread id
  CHECK(a->received_count() == 1);  // each join is answered with `joined`, a refused one not
  CHECK(b->received_count() == 3);
  for (auto& conn : {a, b, c}) conn->clear_received();

  CHECK(m.send_to_thread("t1", uniws::message::copy_of("to t1")) == 2);
  CHECK(m.send_to_thread("t2", uniws::message::copy_of("to t2")) == 1);
  CHECK(m.send_to_user(uniws::message::copy_of("to all")) == 3);
  CHECK(a->received_count() == 2);
  CHECK(b->received_count() == 3);
  CHECK(c->received_count() == 1);

  CHECK(m.leave_thread(2, "t1"));
  CHECK_FALSE(m.leave_thread(2, "t1"));
  CHECK(m.send_to_thread("t1", uniws::message::copy_of("again")) == 1);
  CHECK(m.remove_connection(1));
  CHECK_FALSE(m.remove_connection(1));  // unknown now: harmless
  CHECK_FALSE(m.remove_connection(12345));
  CHECK(m.send_to_thread("t1", uniws::message::copy_of("nobody")) == 0);
  const auto s = m.get_stats();
  CHECK(s.connections == 2);
  CHECK(s.threads == 1);  // only t2 is joined now
}

TEST_CASE("for_each_connection visits each connection once, and may change the roster") {
  manager m;
  for (uniws::connection_id id = 1; id <= 4; ++id) REQUIRE(m.add_connection(make_connection(id)));
  REQUIRE(m.remove_connection(3));
  std::vector<uniws::connection_id> seen;
  m.for_each_connection([&](memory_connection& c) { seen.push_back(c.id()); });
  std::sort(seen.begin(), seen.end());
  CHECK(seen == std::vector<uniws::connection_id>{1, 2, 4});

  // What a shutdown does: close each one, and here remove it from inside the visit.
  seen.clear();
  m.for_each_connection([&](memory_connection& c) {
    seen.push_back(c.id());
    c.close(uniws::close_code::going_away);
    CHECK(m.remove_connection(c.id()));
  });
  CHECK(seen.size() == 3);
  CHECK(m.connection_count() == 0);
  std::size_t after = 0;
  m.for_each_connection([&](memory_connection&) { ++after; });
  CHECK(after == 0);
}

TEST_CASE("one fan-out shares one buffer across every connection") {
  manager m;
  std::vector<std::shared_ptr<memory_connection>> conns;
  for (uniws::connection_id i = 0; i < 50; ++i) {
    conns.push_back(make_connection(i));
    REQUIRE(m.add_connection(conns.back()));
  }
  const auto msg = uniws::message::copy_of("shared");
  CHECK(m.send_to_user(msg) == 50);
  for (const auto& c : conns) CHECK(c->received().front().shares_buffer_with(msg));
  CHECK(msg.use_count() == 51);
}

TEST_CASE("the five events arrive in order with increasing seq on every joined connection") {
  uniws::manager_factory<memory_connection> factory;
  auto alice = factory.get_websocket_manager(uniws::basic_user_context("alice"));
  auto tab1 = make_connection(1), tab2 = make_connection(2), other_thread = make_connection(3);
  for (auto& c : {tab1, tab2, other_thread}) REQUIRE(alice->add_connection(c));
  REQUIRE(alice->join_thread(1, "t1"));
  REQUIRE(alice->join_thread(2, "t1"));
  REQUIRE(alice->join_thread(3, "t2"));
  for (auto& c : {tab1, tab2, other_thread}) c->clear_received();  // the `joined` answers

  for (int run = 0; run < 3; ++run) {
    auto r = alice.start_run("t1", "r-" + std::to_string(run),
                             json_text::object({{"message", json_text::string("hi")}}));
    r.thinking(json_text::object({{"text", json_text::string("hmm")}}));
    auto call = std::move(r).execute_tool("search", json_text::object({{"q", json_text::string("x")}}));
    auto after = std::move(call).finish(json_text::number(7));
    std::move(after).complete("the answer");
  }
  for (auto* c : {tab1.get(), tab2.get()}) {
    const auto received = c->received();
    REQUIRE(received.size() == 15);
    long last_seq = 0;
    for (std::size_t i = 0; i < received.size(); ++i) {
      CHECK(field(received[i].text(), "type") == five_events[i % 5]);
      CHECK(field(received[i].text(), "run_id") == "r-" + std::to_string(i / 5));
      const long seq = std::stol(field(received[i].text(), "seq"));
      CHECK(seq == last_seq + 1);
      last_seq = seq;
    }
  }
  CHECK(other_thread->received_count() == 0);
  CHECK(alice->get_stats().events_emitted == 15);
  CHECK(alice->get_stats().runs_started == 3);
}

TEST_CASE("agent_run: a run dropped early or unwound by an exception still completes, with an error") {
  std::vector<uniws::agent_event> events;
  {
    uniws::agent_run<recording_sink> run(recording_sink{&events}, "t1", "r-1");
    run.thinking(json_text::null());
  }  // abandoned
  REQUIRE(events.size() == 3);
  CHECK(events.back().type == uniws::agent_event_type::agent_completed);
  CHECK(events.back().payload.str() == R"({"status":"error","error":"the run ended early"})");

  events.clear();
  try {
    uniws::agent_run<recording_sink> run(recording_sink{&events}, "t1", "r-2");
    auto call = std::move(run).execute_tool("flaky");
    throw std::runtime_error("tool crashed");
  } catch (const std::runtime_error&) {
  }
  REQUIRE(events.size() == 3);
  CHECK(events[1].type == uniws::agent_event_type::tool_executing);
  CHECK(events[2].type == uniws::agent_event_type::agent_completed);
  CHECK(events[2].payload.str() == R"({"status":"error","error":"the agent failed"})");

  events.clear();
  {
    uniws::agent_run<recording_sink> run(recording_sink{&events}, "t1", "r-3");
    std::move(run).fail("model unavailable");
  }
  REQUIRE(events.size() == 2);  // exactly one agent_completed: the destructor adds none
  CHECK(events[1].payload.str() == R"({"status":"error","error":"model unavailable"})");
}

TEST_CASE("agent_run: a state used after it moved on is a clear error, not a stray event") {
  std::vector<uniws::agent_event> events;
  uniws::agent_run<recording_sink> run(recording_sink{&events}, "t1", "r-1");
  auto call = std::move(run).execute_tool("search");
  CHECK_THROWS_WITH(run.thinking(json_text::null()),
                    Catch::Contains("moved from"));  // NOLINT(bugprone-use-after-move)
  std::move(call).finish(json_text::null()).complete("ok");
  CHECK(events.size() == 4);
}

TEST_CASE("sends to closed and slow connections are counted, never thrown") {
  manager m;
  auto healthy = make_connection(1);
  auto closed = make_connection(2);
  auto slow_dropping =
      make_connection(3, {.max_messages = 4, .policy = uniws::slow_consumer_policy::drop_oldest});
  auto slow_closing = make_connection(4, {.max_messages = 4,
                                          .policy = uniws::slow_consumer_policy::close,
                                          .slow_close_code = uniws::close_code::policy_violation});
  for (auto& c : {healthy, closed, slow_dropping, slow_closing}) REQUIRE(m.add_connection(c));
  closed->close(uniws::close_code::normal);
  slow_dropping->set_slow(true);
  slow_closing->set_slow(true);

  for (int i = 0; i < 10; ++i) CHECK_NOTHROW(m.send_to_user(uniws::message::copy_of("0123456789")));
  const auto s = m.get_stats();
  CHECK(healthy->received_count() == 10);
  CHECK(slow_dropping->queued() == 4);
  CHECK(slow_dropping->dropped() == 6);
  CHECK(slow_closing->closed_with() == uniws::close_code::policy_violation);
  CHECK(s.sends_to_closed == 10 + 5);     // the closed one, and the slow one after it closed
  CHECK(s.connections_closed_slow == 1);  // the delivery that tripped the policy
  CHECK(s.messages_dropped == 6);
  CHECK(s.messages_sent ==
        10 + 10 + 4);  // healthy, slow_dropping (drops still queue), slow_closing's first 4
  CHECK(s.bytes_sent == s.messages_sent * 10);
}

TEST_CASE("isolation: 1,000 users x 3 connections, random sends, nothing reaches another user") {
  uniws::manager_factory<memory_connection> factory;
  constexpr int users = 1000;
  std::vector<std::vector<std::shared_ptr<memory_connection>>> conns(users);
  for (int u = 0; u < users; ++u) {
    auto m = factory.get_websocket_manager(uniws::basic_user_context("user-" + std::to_string(u)));
    for (uniws::connection_id k = 0; k < 3; ++k) {
      conns[u].push_back(make_connection(k));
      REQUIRE(m->add_connection(conns[u].back()));
      REQUIRE(m->join_thread(k, "main"));
      conns[u].back()->clear_received();
    }
  }
  std::vector<long> sent_to(users, 0);
  std::vector<uniws_test::jthread> senders;
  std::vector<std::vector<long>> per_thread(4, std::vector<long>(users, 0));
  for (int t = 0; t < 4; ++t) {
    senders.emplace_back([&, t] {
      std::mt19937 rng(static_cast<unsigned>(t));
      for (int i = 0; i < 5000; ++i) {
        const int u = static_cast<int>(rng() % users);
        const std::string user = "user-" + std::to_string(u);
        auto m = factory.get_websocket_manager(uniws::basic_user_context(user));
        if (i % 2) {
          m->send_to_user(uniws::message::copy_of(user));
        } else {
          m->send_to_thread("main", uniws::message::copy_of(user));
        }
        ++per_thread[static_cast<std::size_t>(t)][static_cast<std::size_t>(u)];
      }
    });
  }
  senders.clear();
  for (const auto& counts : per_thread)
    for (int u = 0; u < users; ++u)
      sent_to[static_cast<std::size_t>(u)] += counts[static_cast<std::size_t>(u)];

  long foreign = 0, total = 0;
  for (int u = 0; u < users; ++u) {
    const std::string me = "user-" + std::to_string(u);
    for (const auto& c : conns[static_cast<std::size_t>(u)]) {
      CHECK(static_cast<long>(c->received_count()) == sent_to[static_cast<std::size_t>(u)]);
      for (const auto& msg : c->received()) {
        ++total;
        if (msg.text() != me) ++foreign;
      }
    }
  }
  CHECK(foreign == 0);
  CHECK(total == 3 * 4 * 5000);
  const auto stats = factory.get_stats();
  CHECK(stats.users == users);
  CHECK(stats.managers.connections == 3 * users);
  CHECK(stats.managers.messages_sent == static_cast<std::uint64_t>(total));  // stats add up
}

TEST_CASE("concurrent emits reach every connection in seq order") {
  uniws::manager_factory<memory_connection> factory;
  auto m = factory.get_websocket_manager(uniws::basic_user_context("alice"));
  std::vector<std::shared_ptr<memory_connection>> tabs;
  for (uniws::connection_id i = 0; i < 4; ++i) {
    tabs.push_back(make_connection(i, {.max_messages = 100000}));
    REQUIRE(m->add_connection(tabs.back()));
    REQUIRE(m->join_thread(i, "t1"));
    tabs.back()->clear_received();
  }
  {
    std::vector<uniws_test::jthread> agents;
    for (int a = 0; a < 4; ++a) {
      agents.emplace_back([&m, a] {
        for (int i = 0; i < 250; ++i) {
          auto run = m.start_run("t1", "r-" + std::to_string(a) + "-" + std::to_string(i));
          std::move(run).complete("ok");
        }
      });
    }
  }
  for (const auto& tab : tabs) {
    const auto received = tab->received();
    REQUIRE(received.size() == 4 * 250 * 2);
    for (std::size_t i = 0; i < received.size(); ++i)
      CHECK(std::stoul(field(received[i].text(), "seq")) == i + 1);
  }
}

TEST_CASE("roster changes race sends without losing or duplicating a delivery") {
  manager m;
  auto steady = make_connection(0, {.max_messages = 1 << 20});
  REQUIRE(m.add_connection(steady));
  std::atomic<bool> stop{false};
  uniws_test::jthread churn([&] {
    for (uniws::connection_id id = 1; !stop.load(); ++id) {
      if (!m.add_connection(make_connection(id))) continue;  // not from this thread: Catch is not thread-safe
      (void)m.join_thread(id, "t");
      m.remove_connection(id);
    }
  });
  long accepted = 0;
  for (int i = 0; i < 20000; ++i) accepted += static_cast<long>(m.send_to_user(uniws::message::copy_of("x")));
  stop = true;
  churn.join();
  CHECK(steady->received_count() == 20000);
  CHECK(accepted >= 20000);
  CHECK(m.connection_count() == 1);
}

// A connection's threads are replaced whole by its joins and leaves while fan-outs read them
// without a lock: a reader must never see a set half-built or freed (ASan, TSan), and a
// connection that stays joined to "t" through the churn gets every event of "t".
TEST_CASE("joins and leaves race fan-outs to the same connection without losing its other threads",
          "[proto-H11]") {
  manager m;
  auto steady = make_connection(0, {.max_messages = 1 << 20});
  REQUIRE(m.add_connection(steady));
  REQUIRE(m.join_thread(0, "t").status == uniws::join_status::joined);
  std::atomic<bool> stop{false};
  uniws_test::jthread churn([&] {
    for (int i = 0; !stop.load(); ++i) {
      const std::string other = "other-" + std::to_string(i % 50);
      (void)m.join_thread(0, other);
      m.leave_thread(0, other);
    }
  });
  long accepted = 0;
  for (int i = 0; i < 20000; ++i)
    accepted += static_cast<long>(m.send_to_thread("t", uniws::message::copy_of("x")));
  stop = true;
  churn.join();
  CHECK(accepted == 20000);
  std::size_t xs = 0;
  for (const auto& r : steady->received()) xs += r.text() == "x";
  CHECK(xs == 20000);
}
