// Resume after a reconnect (docs/protocol.md §R) on one node, over real sockets, against the
// real uniws-golden-path binary: a client drops mid-run, comes back with its epoch and last
// seq, and must read every event of the run exactly once, in order.
#include "../../examples/golden_path/client.hpp"
#include "server_process.hpp"

#include <catch2/catch.hpp>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

using namespace uniws_test;
using namespace uniws_client::sync;
using namespace std::chrono_literals;

namespace {

json::object run_agent(const std::string& thread, int steps = 1, int pad = 0) {
  return json::object{
      {"type", "run_agent"}, {"thread_id", thread}, {"message", "hi"}, {"steps", steps}, {"pad", pad}};
}

// Joins and waits for the answer: from then on the connection receives the thread's events.
void join(ws_client& ws, const std::string& thread) {
  ws.show_joined(true);
  ws.send(json::object{{"type", "join"}, {"thread_id", thread}});
  auto answer = ws.read(5s);
  ws.show_joined(false);
  REQUIRE(answer);
  REQUIRE(answer->at("type").as_string() == "joined");
}

// Reads events (joined answers are kept by the client) until `completed` agent_completed.
std::vector<json::object> read_runs(ws_client& ws, int completed, std::chrono::seconds limit = 60s) {
  std::vector<json::object> frames;
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (completed > 0 && std::chrono::steady_clock::now() < deadline) {
    auto f = ws.read(
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()));
    if (!f) break;
    if (f->at("type").as_string() == "agent_completed") --completed;
    frames.push_back(*f);
  }
  return frames;
}

std::vector<std::uint64_t> seqs(const std::vector<json::object>& frames) {
  std::vector<std::uint64_t> out;
  for (const auto& f : frames) out.push_back(f.at("seq").to_number<std::uint64_t>());
  return out;
}

// Every seq from the first to the last, each once, in order.
void check_contiguous(const std::vector<std::uint64_t>& s) {
  REQUIRE_FALSE(s.empty());
  for (std::size_t i = 1; i < s.size(); ++i) {
    INFO("at " << i << " of " << s.size());
    REQUIRE(s[i] == s[i - 1] + 1);
  }
}

const json::object& last_joined(const ws_client& ws) {
  REQUIRE_FALSE(ws.joined_frames().empty());
  return ws.joined_frames().back();
}

void drop(ws_client& ws) { ws.lowest().socket().close(); }  // no close frame: the network went away

}  // namespace

TEST_CASE("a client drops after 2 of 5 events and resumes: exactly the missing events, then live",
          "[proto-R1][proto-R2]") {
  server_process server({"--agent-delay-ms", "150"});
  const std::string token = login(server.port(), "alice", "alice-pw");
  ws_client runner(server.port(), token), phone(server.port(), token);
  join(phone, "t1");
  runner.send(run_agent("t1"));
  auto before = read_runs(phone, 0);
  while (before.size() < 2) before.push_back(*phone.read(5s));
  REQUIRE(last_joined(phone).at("epoch").as_string().size() == 32);
  drop(phone);
  std::this_thread::sleep_for(200ms);  // the run goes on without the phone

  phone.reconnect();
  const auto after = read_runs(phone, 1);
  std::vector<json::object> all = before;
  all.insert(all.end(), after.begin(), after.end());
  REQUIRE(all.size() == 5);
  CHECK(all[0].at("type").as_string() == "agent_started");
  CHECK(all[4].at("type").as_string() == "agent_completed");
  check_contiguous(seqs(all));
  const auto& resumed = last_joined(phone);
  CHECK(resumed.at("recovered").as_bool());
  CHECK(resumed.at("replayed").as_int64() >= 1);  // at least the event sent while it was away
  CHECK(resumed.at("epoch") == phone.joined_frames().front().at("epoch"));
  const auto stats = http_request(server.port(), http::verb::get, "/stats").json();
  CHECK(stats.at("events_replayed").as_int64() == resumed.at("replayed").as_int64());
  CHECK(stats.at("resumes_recovered").as_int64() == 1);
  runner.close();
  phone.close();
  CHECK(server.stop() == 0);
}

TEST_CASE("2 of 2,000 padded thinking events, then a drop: the resume brings every one, once, in order",
          "[proto-R2][proto-R4]") {
  server_process server({"--agent-delay-ms", "1", "--history-events", "4096", "--history-bytes", "16777216",
                         "--queue-messages", "4096", "--queue-bytes", "16777216"});
  const std::string token = login(server.port(), "alice", "alice-pw");
  ws_client runner(server.port(), token), phone(server.port(), token);
  join(phone, "t1");
  runner.send(run_agent("t1", 2000, 512));
  std::vector<json::object> got;
  while (got.size() < 2) got.push_back(*phone.read(5s));
  drop(phone);
  std::this_thread::sleep_for(300ms);
  phone.reconnect();
  const auto rest = read_runs(phone, 1);
  got.insert(got.end(), rest.begin(), rest.end());
  REQUIRE(got.size() == 2004);  // started, 2,000 thinking, the tool pair, completed
  check_contiguous(seqs(got));
  CHECK(got.back().at("type").as_string() == "agent_completed");
  CHECK(last_joined(phone).at("recovered").as_bool());
  CHECK(last_joined(phone).at("replayed").as_int64() > 10);
  phone.close();
  CHECK(server.stop() == 0);
}

// Ten agents on the thread at about 1,000 events a second each: the replay happens while
// events keep coming. The client must see one contiguous run of seqs from its first event to
// the tenth agent_completed.
TEST_CASE(
    "a resume while the thread's agents emit about 10,000 events a second: the full seq list, once each",
    "[proto-R2]") {
  server_process server({"--agent-delay-ms", "1", "--max-runs-per-user", "10", "--history-events", "65536",
                         "--history-bytes", "268435456", "--queue-messages", "65536", "--queue-bytes",
                         "268435456"});
  const std::string token = login(server.port(), "alice", "alice-pw");
  ws_client runner(server.port(), token), phone(server.port(), token);
  join(phone, "t1");
  for (int i = 0; i < 10; ++i) runner.send(run_agent("t1", 1500));
  std::vector<json::object> got;
  while (got.size() < 500) got.push_back(*phone.read(5s));
  drop(phone);
  std::this_thread::sleep_for(100ms);
  phone.reconnect();
  const auto rest = read_runs(phone, 10);
  got.insert(got.end(), rest.begin(), rest.end());
  REQUIRE(got.size() == 10 * 1504);
  check_contiguous(seqs(got));
  CHECK(last_joined(phone).at("recovered").as_bool());
  phone.close();
  CHECK(server.stop() == 0);
}

TEST_CASE("history exceeded, or another epoch: recovered false and no replay", "[proto-R3][proto-R4]") {
  std::string epoch;
  std::uint64_t last = 0;
  {
    server_process server({"--agent-delay-ms", "1", "--history-events", "4"});
    const auto config = http_request(server.port(), http::verb::get, "/config").json();
    CHECK(config.at("history_events").as_int64() == 4);
    CHECK(config.at("history_seconds").as_int64() == 300);
    const std::string token = login(server.port(), "alice", "alice-pw");
    ws_client runner(server.port(), token), phone(server.port(), token);
    join(phone, "t1");
    runner.send(run_agent("t1"));
    (void)read_runs(runner, 1);
    phone.close();
    epoch = std::string(last_joined(phone).at("epoch").as_string());
    last = last_joined(phone).at("seq").to_number<std::uint64_t>();  // the phone read none of the 5

    ws_client back(server.port(), token);
    back.show_joined(true);
    back.send(json::object{{"type", "join"}, {"thread_id", "t1"}, {"epoch", epoch}, {"after_seq", last}});
    auto answer = back.read(5s);
    REQUIRE(answer);
    CHECK(answer->at("type").as_string() == "joined");  // nothing replayed before it
    CHECK(answer->at("recovered").as_bool() == false);
    CHECK(answer->at("epoch").as_string() == epoch);
    CHECK(http_request(server.port(), http::verb::get, "/stats")
              .json()
              .at("resumes_not_recovered")
              .as_int64() == 1);
    back.close();
    runner.close();
    CHECK(server.stop() == 0);
  }
  server_process restarted({"--agent-delay-ms", "1"});
  ws_client back(restarted.port(), login(restarted.port(), "alice", "alice-pw"));
  back.show_joined(true);
  back.send(json::object{{"type", "join"}, {"thread_id", "t1"}, {"epoch", epoch}, {"after_seq", last}});
  auto answer = back.read(5s);
  REQUIRE(answer);
  CHECK(answer->at("recovered").as_bool() == false);
  CHECK(answer->at("epoch").as_string() != epoch);  // the server restarted: a new history
  back.close();
  CHECK(restarted.stop() == 0);
}

TEST_CASE("a resume with a malformed epoch or after_seq is a bad request", "[proto-R3][proto-E1]") {
  server_process server({"--agent-delay-ms", "1"});
  ws_client ws(server.port(), login(server.port(), "alice", "alice-pw"));
  for (const auto& bad :
       {json::object{{"type", "join"}, {"thread_id", "t"}, {"epoch", "xyz"}, {"after_seq", 1}},
        json::object{
            {"type", "join"}, {"thread_id", "t"}, {"epoch", std::string(32, 'a')}, {"after_seq", -1}},
        json::object{{"type", "join"}, {"thread_id", "t"}, {"epoch", std::string(32, 'a')}}}) {
    ws.send(bad);
    auto reply = ws.read(5s);
    REQUIRE(reply);
    CHECK(reply->at("type").as_string() == "error");
    CHECK(reply->at("code").as_string() == "bad_request");
  }
  ws.close();
  CHECK(server.stop() == 0);
}
