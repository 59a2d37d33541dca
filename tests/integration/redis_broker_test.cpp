// Two uniws-golden-path processes behind one real redis-server: a user's events reach its
// connections on both nodes, once each, in one seq order; an outage of Redis is survived.
#include "../../examples/golden_path/client.hpp"
#include "redis_process.hpp"
#include "server_process.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <string>
#include <vector>

using namespace uniws_test;
using namespace uniws_client::sync;
using namespace std::chrono_literals;

namespace {

const std::string secret = "a-cluster-secret-0123456789";

std::vector<std::string> node_args(const redis_process& redis) {
  return {"--agent-delay-ms", "1", "--jwt-secret", secret, "--redis", redis.address()};
}

json::object join(const std::string& thread) { return json::object{{"type", "join"}, {"thread_id", thread}}; }
json::object run_agent(const std::string& thread) {
  return json::object{{"type", "run_agent"}, {"thread_id", thread}, {"message", "hi"}};
}

// Joins, then pings: once the pong is back the join is in the roster.
void join_and_sync(ws_client& ws, const std::string& thread) {
  ws.send(join(thread));
  ws.send(json::object{{"type", "ping"}});
  auto pong = ws.read(5s);
  REQUIRE(pong);
  REQUIRE(pong->at("type").as_string() == "pong");
}

bool broker_connected(const server_process& node) {
  return http_request(node.port(), http::verb::get, "/stats").json().at("broker_connected").as_int64() == 1;
}

void wait_connected(const server_process& node, std::chrono::seconds limit = 15s) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!broker_connected(node) && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(50ms);
  REQUIRE(broker_connected(node));
}

std::vector<std::string> types(const std::vector<json::object>& frames) {
  std::vector<std::string> out;
  for (const auto& f : frames) out.emplace_back(f.at("type").as_string());
  return out;
}

// A redis-server and two nodes that share it and a token secret, both connected to it.
struct cluster {
  cluster() : a(node_args(redis)), b(node_args(redis)) {
    wait_connected(a);
    wait_connected(b);
  }
  // Until Redis has `n` subscribers on `user`'s channel: a node subscribes asynchronously.
  void wait_subscribed(const std::string& user, int n) {
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    while (redis.subscribers("uniws:u:" + user) != n && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(10ms);
    REQUIRE(redis.subscribers("uniws:u:" + user) == n);
  }
  redis_process redis;
  server_process a, b;
};

const std::vector<std::string> five = {"agent_started", "agent_thinking", "tool_executing", "tool_completed",
                                       "agent_completed"};

void check_run(const std::vector<json::object>& frames, std::int64_t first_seq) {
  REQUIRE(types(frames) == five);
  for (std::size_t i = 0; i < frames.size(); ++i)
    CHECK(frames[i].at("seq").as_int64() == first_seq + static_cast<std::int64_t>(i));
}

}  // namespace

TEST_CASE("cluster: a run on node A reaches alice on A and on B once each, in order, and not bob",
          "[proto-C2][proto-W9]") {
  cluster c;
  auto &a = c.a, &b = c.b;
  ws_client alice_a(a.port(), login(a.port(), "alice", "alice-pw"));
  ws_client alice_b(b.port(), login(a.port(), "alice", "alice-pw"));  // a token from A, used on B
  ws_client bob_b(b.port(), login(b.port(), "bob", "bob-pw"));
  join_and_sync(alice_b, "t");
  join_and_sync(bob_b, "t");
  c.wait_subscribed("alice", 2);

  alice_a.send(run_agent("t"));
  const auto on_a = alice_a.read_until("agent_completed");
  const auto on_b = alice_b.read_until("agent_completed");
  check_run(on_a, on_a.front().at("seq").as_int64());
  check_run(on_b, on_a.front().at("seq").as_int64());
  CHECK(on_a.front().at("run_id") == on_b.front().at("run_id"));
  // Nothing more: not a second copy on either, nothing at all for bob.
  CHECK_FALSE(alice_a.read(300ms));
  CHECK_FALSE(alice_b.read(300ms));
  CHECK_FALSE(bob_b.read(300ms));

  const auto stats = http_request(a.port(), http::verb::get, "/stats").json();
  CHECK(stats.at("events_published").as_int64() == 5);
  CHECK(stats.at("publish_failures").as_int64() == 0);
}

TEST_CASE("cluster: Redis killed mid-run and restarted - nodes serve locally, then across nodes again",
          "[proto-C2][proto-W9]") {
  cluster c;
  auto& redis = c.redis;
  auto &a = c.a, &b = c.b;
  ws_client alice_a(a.port(), login(a.port(), "alice", "alice-pw"));
  ws_client alice_b(b.port(), login(b.port(), "alice", "alice-pw"));
  join_and_sync(alice_a, "t");
  join_and_sync(alice_b, "t");
  c.wait_subscribed("alice", 2);

  alice_a.send(run_agent("t"));
  check_run(alice_a.read_until("agent_completed"), 1);
  check_run(alice_b.read_until("agent_completed"), 1);

  redis.kill();
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (broker_connected(a) && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(20ms);
  REQUIRE_FALSE(broker_connected(a));

  // Down: A still serves its own connection (local seq continues), B hears nothing (a timed
  // read would close alice_b's socket, so B's counters say it instead).
  const auto sent_by_b =
      http_request(b.port(), http::verb::get, "/stats").json().at("messages_sent").as_int64();
  alice_a.send(run_agent("t"));
  check_run(alice_a.read_until("agent_completed"), 6);
  std::this_thread::sleep_for(300ms);
  CHECK(http_request(b.port(), http::verb::get, "/stats").json().at("messages_sent").as_int64() == sent_by_b);
  CHECK(http_request(a.port(), http::verb::get, "/health").status == 200);
  CHECK(http_request(b.port(), http::verb::get, "/health").status == 200);

  redis.start();
  wait_connected(a);
  wait_connected(b);
  c.wait_subscribed("alice", 2);  // both nodes resubscribed
  alice_a.send(run_agent("t"));
  const auto on_a = alice_a.read_until("agent_completed");
  const auto on_b = alice_b.read_until("agent_completed");
  check_run(on_a, 11);  // above what A showed alone: the node's floor lifts the new counter
  check_run(on_b, 11);  // B skips A's local seqs: never backwards, nothing twice
  const auto stats = http_request(a.port(), http::verb::get, "/stats").json();
  CHECK(stats.at("publish_failures").as_int64() >= 5);
  CHECK(stats.at("broker_reconnects").as_int64() >= 1);
  CHECK(a.stop() == 0);
  CHECK(b.stop() == 0);
}

namespace {

// Joins and waits for the answer (the store's, in a cluster).
json::object join_answered(ws_client& ws, const std::string& thread) {
  ws.show_joined(true);
  ws.send(join(thread));
  auto answer = ws.read(5s);
  ws.show_joined(false);
  REQUIRE(answer);
  REQUIRE(answer->at("type").as_string() == "joined");
  return *answer;
}

std::vector<json::object> read_until_completed(ws_client& ws) {
  std::vector<json::object> frames;
  for (;;) {
    auto f = ws.read(20s);
    if (!f) break;
    frames.push_back(*f);
    if (f->at("type").as_string() == "agent_completed") break;
  }
  return frames;
}

void check_contiguous(const std::vector<json::object>& frames) {
  for (std::size_t i = 1; i < frames.size(); ++i) {
    INFO("at " << i);
    REQUIRE(frames[i].at("seq").as_int64() == frames[i - 1].at("seq").as_int64() + 1);
  }
}

}  // namespace

TEST_CASE(
    "cluster: the reader's node is SIGKILLed mid-run, it resumes on the agent's node and gets every event "
    "once",
    "[proto-R2][proto-R4][proto-C2]") {
  cluster c;
  const std::string token = login(c.a.port(), "alice", "alice-pw");
  ws_client runner(c.b.port(), token), phone(c.a.port(), token);
  join_answered(runner, "t");
  const auto first = join_answered(phone, "t");
  c.wait_subscribed("alice", 2);
  runner.send(json::object{{"type", "run_agent"}, {"thread_id", "t"}, {"message", "hi"}, {"steps", 300}});
  std::vector<json::object> got;
  while (got.size() < 2) got.push_back(*phone.read(5s));
  CHECK(c.a.stop(SIGKILL) != 0);  // node A dies without a word
  phone.reconnect(c.b.port());
  const auto rest = read_until_completed(phone);
  got.insert(got.end(), rest.begin(), rest.end());
  REQUIRE(got.size() == 304);
  CHECK(got.front().at("type").as_string() == "agent_started");
  CHECK(got.back().at("type").as_string() == "agent_completed");
  check_contiguous(got);
  const auto& resumed = phone.joined_frames().back();
  CHECK(resumed.at("recovered").as_bool());
  CHECK(resumed.at("epoch") == first.at("epoch"));  // the history lives in Redis, not in node A

  SECTION("Redis restarted without persistence: a new epoch, recovered false") {
    c.redis.kill();
    c.redis.start();
    wait_connected(c.b);
    c.wait_subscribed("alice", 1);
    phone.lowest().socket().close();
    phone.reconnect(c.b.port());
    phone.show_joined(true);
    auto answer = phone.read(5s);
    REQUIRE(answer);
    CHECK(answer->at("type").as_string() == "joined");
    CHECK_FALSE(answer->at("recovered").as_bool());
    CHECK(answer->at("epoch") != first.at("epoch"));
  }
  phone.close();
  runner.close();
  CHECK(c.b.stop() == 0);
}
