// Several nodes (factories) sharing one user's events through a broker: the semantics
// include/uniws/broker.hpp promises, against testing::memory_bus.
#include "envelope_field.hpp"

#include <uniws/factory.hpp>
#include <uniws/testing.hpp>

#include <catch2/catch.hpp>

#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace {

using uniws::testing::memory_bus;
using uniws::testing::memory_connection;
using node_factory = uniws::manager_factory<memory_connection, uniws::always_available, memory_bus::endpoint>;

using uniws_test::field;

struct node {
  explicit node(memory_bus& bus) : factory(uniws::factory_options{}, uniws::always_available{}, bus.node()) {}
  std::shared_ptr<memory_connection> connect(const std::string& user, uniws::connection_id id,
                                             const std::string& thread) {
    auto c = std::make_shared<memory_connection>(id);
    auto mgr = factory.get_websocket_manager(uniws::basic_user_context(user));
    REQUIRE(mgr->add_connection(c));
    REQUIRE(mgr->join_thread(id, thread).status == uniws::join_status::pending);
    REQUIRE(c->received_count() == 1);  // the bus answered at once: `joined`
    c->clear_received();
    return c;
  }
  void run(const std::string& user, const std::string& thread, const std::string& run_id) {
    auto mgr = factory.get_websocket_manager(uniws::basic_user_context(user));
    auto r = mgr.start_run(thread, run_id);
    r.thinking(uniws::json_text::object());
    auto call = std::move(r).execute_tool("t");
    auto after = std::move(call).finish(uniws::json_text::number(1));
    std::move(after).complete("done");
  }
  node_factory factory;
};

// (type, seq, run) of each message a connection received.
struct seen {
  std::string type, run;
  long seq;
};
std::vector<seen> received(const memory_connection& c) {
  std::vector<seen> out;
  for (const auto& m : c.received()) {
    const std::string_view text(m.data(), m.size());
    out.push_back({field(text, "type"), field(text, "run_id"), std::stol(field(text, "seq"))});
  }
  return out;
}

bool consecutive(const std::vector<seen>& s) {
  for (std::size_t i = 1; i < s.size(); ++i)
    if (s[i].seq != s[i - 1].seq + 1) return false;
  return true;
}

}  // namespace

TEST_CASE("a run on node A reaches alice's connections on A and B once each, in order, and not bob") {
  memory_bus bus;
  node a(bus), b(bus);
  auto alice_a1 = a.connect("alice", 1, "t"), alice_a2 = a.connect("alice", 2, "t");
  auto alice_b = b.connect("alice", 3, "t"), bob_b = b.connect("bob", 4, "t");

  a.run("alice", "t", "r1");
  CHECK(alice_a1->received_count() == 0);  // nothing is delivered before the broker returns it
  CHECK(bus.pump() == 10);                 // five events x two nodes subscribed to alice

  for (const auto& c : {alice_a1, alice_a2, alice_b}) {
    const auto s = received(*c);
    REQUIRE(s.size() == 5);
    CHECK(s.front().type == "agent_started");
    CHECK(s.back().type == "agent_completed");
    CHECK(s.front().seq == 1);
    CHECK(consecutive(s));
  }
  CHECK(bob_b->received_count() == 0);
  CHECK(a.factory.get_stats().managers.events_published == 5);
  CHECK(a.factory.get_stats().managers.publish_failures == 0);
}

TEST_CASE("runs emitted on two nodes for one user share one seq order on every connection") {
  memory_bus bus;
  node a(bus), b(bus);
  auto on_a = a.connect("alice", 1, "t"), on_b = b.connect("alice", 2, "t");
  for (int i = 0; i < 20; ++i) {
    (i % 2 ? a : b).run("alice", "t", "r" + std::to_string(i));
    if (i % 3 == 0) bus.pump();  // deliveries interleave with emits
  }
  bus.pump();
  const auto sa = received(*on_a), sb = received(*on_b);
  REQUIRE(sa.size() == 100);
  REQUIRE(sb.size() == 100);
  CHECK(consecutive(sa));
  CHECK(consecutive(sb));
  for (std::size_t i = 0; i < sa.size(); ++i) CHECK((sa[i].run == sb[i].run && sa[i].seq == sb[i].seq));
}

TEST_CASE("the node subscribes to a user with its first connection and unsubscribes with its last") {
  memory_bus bus;
  node a(bus);
  auto& endpoint = a.factory.get_broker();
  CHECK_FALSE(endpoint.subscribed("alice"));
  auto c1 = a.connect("alice", 1, "t");
  CHECK(endpoint.subscribed("alice"));
  auto c2 = a.connect("alice", 2, "t");
  auto mgr = a.factory.get_websocket_manager(uniws::basic_user_context("alice"));
  mgr->remove_connection(1);
  CHECK(endpoint.subscribed("alice"));
  mgr->remove_connection(2);
  CHECK_FALSE(endpoint.subscribed("alice"));
  // Events for a user this node no longer holds are not delivered here.
  node b(bus);
  auto elsewhere = b.connect("alice", 3, "t");
  b.run("alice", "t", "r");
  bus.pump();
  CHECK(elsewhere->received_count() == 5);
  CHECK(c1->received_count() == 0);
}

TEST_CASE("broker down: each node delivers its own events (counted), and back up: one order again") {
  memory_bus bus;
  node a(bus), b(bus);
  auto on_a = a.connect("alice", 1, "t"), on_b = b.connect("alice", 2, "t");
  a.run("alice", "t", "r1");
  bus.pump();

  bus.set_down(true);
  a.run("alice", "t", "r2");  // delivered on A at once, with A's next seq; B cannot hear it
  CHECK(on_a->received_count() == 10);
  CHECK(on_b->received_count() == 5);
  CHECK(a.factory.get_stats().managers.publish_failures == 5);
  CHECK(bus.refused() == 5);

  bus.set_down(false);
  b.run("alice", "t", "r3");  // the bus never saw A's seqs 6-10: it stamps r3 6-10 again
  bus.pump();
  auto sa = received(*on_a), sb = received(*on_b);
  REQUIRE(sa.size() == 15);
  REQUIRE(sb.size() == 10);
  CHECK(consecutive(sa));  // A re-stamps r3 11-15: nothing dropped, seq never goes back
  CHECK(consecutive(sb));
  CHECK(sa.back().run == "r3");
  CHECK(sb.back().run == "r3");
  CHECK(a.factory.get_stats().managers.restamped == 5);

  a.run("alice", "t", "r4");  // A's floor (15) lifts the bus's counter: one order again
  bus.pump();
  sa = received(*on_a);
  sb = received(*on_b);
  REQUIRE(sa.size() == 20);
  REQUIRE(sb.size() == 15);
  CHECK(consecutive(sa));
  CHECK(sa.back().seq == sb.back().seq);
  CHECK(sb[10].seq == 16);  // B skips the seqs A used alone
  CHECK(b.factory.get_stats().managers.restamped == 0);
}

namespace {
// A broker whose every call throws: the factory must treat it as down, and count each throw.
struct throwing_broker {
  bool publish(std::string_view, const uniws::agent_event&, std::uint64_t) {
    throw std::runtime_error("publish");
  }
  void subscribe(std::string_view) { throw std::runtime_error("subscribe"); }
  void unsubscribe(std::string_view) { throw std::runtime_error("unsubscribe"); }
  void set_receiver(uniws::broker_receiver) {}
  [[nodiscard]] bool enabled() const noexcept { return true; }
  [[nodiscard]] uniws::broker_stats stats() const { return {}; }
  void stop() {}
  void read_history(std::string_view, std::string_view, std::optional<std::uint64_t>,
                    const uniws::history_receiver&) {
    throw std::runtime_error("read_history");
  }
};
}  // namespace

TEST_CASE("a broker that throws is a broker that is down: events delivered here, every throw counted") {
  uniws::manager_factory<memory_connection, uniws::always_available, throwing_broker> f;
  auto c = std::make_shared<memory_connection>(1);
  auto mgr = f.get_websocket_manager(uniws::basic_user_context("alice"));
  REQUIRE(mgr->add_connection(c));  // subscribe throws: 1
  CHECK(f.get_stats().broker_errors == 1);
  REQUIRE(mgr->join_thread(1, "t").status == uniws::join_status::pending);  // read_history throws: 2
  CHECK(c->received_count() == 1);  // the node answered the join alone
  CHECK(field(std::string_view(c->received()[0].data(), c->received()[0].size()), "type") == "joined");
  CHECK(mgr->emit({uniws::agent_event_type::agent_started, "t", "r", uniws::json_text::object()}) == 1);  // 3
  CHECK(c->received_count() == 2);
  const auto s = f.get_stats();
  CHECK(s.broker_errors == 3);
  CHECK(s.managers.publish_failures == 1);
  CHECK(mgr->remove_connection(1));  // unsubscribe throws: 4
  CHECK(f.get_stats().broker_errors == 4);
}

TEST_CASE("without a broker nothing changes: events are delivered at once, seq from 1") {
  uniws::manager_factory<memory_connection> single;
  auto c = std::make_shared<memory_connection>(1);
  auto mgr = single.get_websocket_manager(uniws::basic_user_context("alice"));
  REQUIRE(mgr->add_connection(c));
  REQUIRE(mgr->join_thread(1, "t"));
  c->clear_received();
  CHECK(mgr->emit({uniws::agent_event_type::agent_started, "t", "r", uniws::json_text::object()}) == 1);
  CHECK(c->received_count() == 1);
  CHECK(single.get_stats().managers.events_published == 0);
}

TEST_CASE("restamp_event replaces the envelope's seq, not text that looks like one") {
  const uniws::agent_event e{uniws::agent_event_type::agent_thinking, R"(t,"seq":7)", R"(r,"seq":8)",
                             uniws::json_text::object({{"seq", uniws::json_text::number(9)}})};
  const uniws::message original = uniws::encode_event(e, 41);
  const uniws::message restamped = uniws::restamp_event(original, 1234567);
  CHECK(std::string_view(restamped.data(), restamped.size()) ==
        std::string_view(uniws::encode_event(e, 1234567).data(), uniws::encode_event(e, 1234567).size()));
  CHECK(uniws::restamp_event(uniws::message::copy_of(R"({"type":"pong"})"), 1).size() == 0);
}
