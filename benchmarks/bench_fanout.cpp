// uniws_bench_fanout: one message to the N connections of one user, N = 1, 10, 100, 10,000.
// uniws::unified_manager over uniws::testing::memory_connection, against the pattern of
// Boost.Beast's chat-multi example, written here in that style: a mutex-protected set of
// sessions, a copy of the session list per send, a per-session std::vector queue popped
// with erase(begin()) when its write completes.
//
// Both build the message from the same text on every send (one allocation each), then fan
// it out. Two reader speeds: "keeps up" (every write completes before the next send) and
// "burst:64" (64 sends queue up before the writes complete, as when an agent streams faster
// than a socket drains). Reported: ns per delivery (the inverse of items_per_second) and
// heap allocations per delivery and per send. uniws_stamped is uniws_manager with each
// message stamped, as events are for the delivery-latency histogram: its ratio to
// uniws_manager is what /metrics costs on the fan-out path; delivery_metrics_per_write is
// what it costs per write completion.
//
// uniws_emit and uniws_emit_history fan out agent events through emit() (seq, encoding, one
// stamp), without and with the per-user history (default bounds): their ratio is what resume
// costs on the event path. resume_1000_missed is one resume that replays 1,000 events.
//
// join_leave: one connection joins and leaves a thread while its user has C connections, each
// joined to 255 threads with 128-byte ids (C = 1, 120: the proto-H11 finding 6 shape). A
// change should cost the same at both, and retire only that connection's threads.
#include "alloc_counter.hpp"
#include "ratio_reporter.hpp"

#include <uniws/histogram.hpp>
#include <uniws/manager.hpp>
#include <uniws/testing.hpp>

#include <benchmark/benchmark.h>

#include <memory>
#include <mutex>
#include <string>
#include <unordered_set>
#include <vector>

namespace {

const std::string event_text =
    R"({"type":"agent_thinking","thread_id":"t1","run_id":"r-1","seq":2,"payload":{"text":"considering the question"}})";

void report(benchmark::State& state, long allocations_before, std::int64_t connections, std::int64_t burst) {
  const auto sends = static_cast<double>(state.iterations() * burst);
  const auto allocations = static_cast<double>(uniws_bench::heap_allocations.load() - allocations_before);
  state.SetItemsProcessed(state.iterations() * burst * connections);  // deliveries
  state.counters["allocs_per_delivery"] = allocations / (sends * static_cast<double>(connections));
  state.counters["allocs_per_send"] = allocations / sends;
}

// `stamped`: each message is stamped with the time it is made, as an emitted event is (what
// the delivery latency is measured from).
void fan_out(benchmark::State& state, bool stamped) {
  const auto n = state.range(0);
  const auto burst = state.range(1);
  uniws::unified_manager<uniws::testing::memory_connection> manager;
  std::vector<std::shared_ptr<uniws::testing::memory_connection>> connections;
  constexpr std::size_t batch = 256;  // a reader that keeps up is cleared every `batch` sends
  for (std::int64_t i = 0; i < n; ++i) {
    connections.push_back(
        std::make_shared<uniws::testing::memory_connection>(static_cast<uniws::connection_id>(i)));
    connections.back()->reserve(batch + static_cast<std::size_t>(burst));
    (void)manager.add_connection(connections.back());
  }
  auto one_round = [&] {
    if (burst > 1)
      for (auto& c : connections) c->set_slow(true);  // writes still in flight
    for (std::int64_t b = 0; b < burst; ++b)
      manager.send_to_user(stamped ? uniws::message::copy_of(event_text, uniws::message::clock::now())
                                   : uniws::message::copy_of(event_text));
    if (burst > 1)
      for (auto& c : connections) c->set_slow(false);  // all writes complete
  };
  // Warm up: every queue ring and record vector reaches its steady size.
  for (std::size_t i = 0; i < batch; ++i) one_round();
  for (auto& c : connections) c->clear_received();

  const long before = uniws_bench::heap_allocations.load();
  std::size_t rounds = 0;
  for (auto _ : state) {
    one_round();
    if (burst > 1 || ++rounds % batch == 0)
      for (auto& c : connections) c->clear_received();
  }
  report(state, before, n, burst);
}

void uniws_manager(benchmark::State& state) { fan_out(state, false); }

// What /metrics adds to the fan-out path: a stamp per emitted event (one clock read per send,
// shared by its N deliveries).
void uniws_stamped(benchmark::State& state) { fan_out(state, true); }

// What /metrics adds to the write path, per delivery: the Beast adapter's write completion
// reads the clock and records the latency and the queue depth (uniws::delivery_metrics).
// Compare with what a write costs (a loopback send of one small frame, µs: RESULTS.md).
void delivery_metrics_per_write(benchmark::State& state) {
  uniws::delivery_metrics metrics;
  const uniws::message m = uniws::message::copy_of(event_text, uniws::message::clock::now());
  for (auto _ : state) {
    metrics.queue_bytes.observe(std::uint64_t{4096});
    metrics.delivery_seconds.observe(uniws::message::clock::now() - m.emitted_at());
  }
  state.SetItemsProcessed(state.iterations());
}

// emit(): the seq, the envelope, the stamp, and (with history) the ring that keeps it.
void emit_fan_out(benchmark::State& state, bool history) {
  const auto n = state.range(0);
  const auto burst = state.range(1);
  uniws::manager_options options;
  if (!history) options.history.max_events = 0;
  uniws::unified_manager<uniws::testing::memory_connection> manager(options);
  std::vector<std::shared_ptr<uniws::testing::memory_connection>> connections;
  constexpr std::size_t batch = 256;
  for (std::int64_t i = 0; i < n; ++i) {
    connections.push_back(
        std::make_shared<uniws::testing::memory_connection>(static_cast<uniws::connection_id>(i)));
    connections.back()->reserve(batch + static_cast<std::size_t>(burst) + 1);
    (void)manager.add_connection(connections.back());
    (void)manager.join_thread(static_cast<uniws::connection_id>(i), "t1");
  }
  const uniws::json_text payload =
      uniws::json_text::object({{"text", uniws::json_text::string("considering the question")}});
  auto one_round = [&] {
    if (burst > 1)
      for (auto& c : connections) c->set_slow(true);
    for (std::int64_t b = 0; b < burst; ++b)
      manager.emit({uniws::agent_event_type::agent_thinking, "t1", "r-1", payload});
    if (burst > 1)
      for (auto& c : connections) c->set_slow(false);
  };
  for (std::int64_t e = 0; e < 1100; e += burst) one_round();  // the history ring reaches its bound (1,024)
  for (auto& c : connections) c->clear_received();
  const long before = uniws_bench::heap_allocations.load();
  std::size_t rounds = 0;
  for (auto _ : state) {
    one_round();
    if (burst > 1 || ++rounds % batch == 0)
      for (auto& c : connections) c->clear_received();
  }
  report(state, before, n, burst);
}

void uniws_emit(benchmark::State& state) { emit_fan_out(state, false); }
void uniws_emit_history(benchmark::State& state) { emit_fan_out(state, true); }

// One resume: a connection comes back 1,000 events behind; the manager replays them into its
// queue and answers joined. Reported per resume (add, resume, remove).
void resume_1000_missed(benchmark::State& state) {
  uniws::unified_manager<uniws::testing::memory_connection> manager;
  auto first = std::make_shared<uniws::testing::memory_connection>(0);
  (void)manager.add_connection(first);
  const auto epoch = manager.join_thread(0, "t1").epoch;
  manager.remove_connection(0);
  const uniws::json_text payload =
      uniws::json_text::object({{"text", uniws::json_text::string("considering the question")}});
  std::uint64_t last = 0;
  for (int i = 0; i < 1024; ++i)
    last = manager.emit({uniws::agent_event_type::agent_thinking, "t1", "r-1", payload});
  uniws::connection_id id = 1;
  for (auto _ : state) {
    auto c = std::make_shared<uniws::testing::memory_connection>(id);
    c->reserve(1001);
    (void)manager.add_connection(c);
    const auto r = manager.join_thread(id, "t1", uniws::resume_point{epoch, last - 1000});
    if (r.replayed != 1000) state.SkipWithError("the resume did not replay 1,000 events");
    manager.remove_connection(id++);
  }
  state.SetItemsProcessed(state.iterations());
}

// ---- the chat-multi pattern ----

class chat_session : public std::enable_shared_from_this<chat_session> {
 public:
  void send(const std::shared_ptr<const std::string>& ss) {
    queue_.push_back(ss);
    if (queue_.size() > 1) return;  // a write is already in flight
    in_flight_ = true;              // chat-multi starts ws_.async_write(*queue_.front()) here
  }
  // chat-multi's on_write: the write of queue_.front() completed.
  void on_write() {
    if (!in_flight_) return;
    bytes_written_ += queue_.front()->size();
    queue_.erase(queue_.begin());  // O(queue length): every queued pointer moves down one
    in_flight_ = !queue_.empty();  // chat-multi then writes the next one
  }
  std::size_t bytes_written() const noexcept { return bytes_written_; }

 private:
  std::vector<std::shared_ptr<const std::string>> queue_;
  bool in_flight_ = false;
  std::size_t bytes_written_ = 0;
};

class chat_shared_state {
 public:
  void join(chat_session* s) {
    std::lock_guard lock(mutex_);
    sessions_.insert(s);
  }
  void send(std::string message) {
    auto const ss = std::make_shared<const std::string>(std::move(message));
    std::vector<std::weak_ptr<chat_session>> v;
    {
      std::lock_guard lock(mutex_);
      v.reserve(sessions_.size());
      for (auto* p : sessions_) v.emplace_back(p->weak_from_this());
    }
    for (auto const& wp : v)
      if (auto sp = wp.lock()) sp->send(ss);
  }

 private:
  std::mutex mutex_;
  std::unordered_set<chat_session*> sessions_;
};

void chat_multi(benchmark::State& state) {
  const auto n = state.range(0);
  const auto burst = state.range(1);
  chat_shared_state shared;
  std::vector<std::shared_ptr<chat_session>> sessions;
  for (std::int64_t i = 0; i < n; ++i) {
    sessions.push_back(std::make_shared<chat_session>());
    shared.join(sessions.back().get());
  }
  auto one_round = [&] {
    for (std::int64_t b = 0; b < burst; ++b) shared.send(event_text);
    for (std::int64_t b = 0; b < burst; ++b)
      for (auto& s : sessions) s->on_write();  // the writes complete, oldest first
  };
  one_round();  // warm up: each session's queue has its capacity

  const long before = uniws_bench::heap_allocations.load();
  for (auto _ : state) one_round();
  report(state, before, n, burst);
  benchmark::DoNotOptimize(sessions.front()->bytes_written());
}

}  // namespace

void join_leave(benchmark::State& state) {
  const auto n = state.range(0);
  uniws::manager_options options;
  options.max_threads_per_connection = 256;
  uniws::unified_manager<uniws::testing::memory_connection> manager(options);
  std::vector<std::shared_ptr<uniws::testing::memory_connection>> connections;
  auto thread_id = [](std::int64_t t) {
    return std::string(120, 't') + std::to_string(10'000'000 + t);
  };  // 128 bytes
  for (std::int64_t i = 0; i < n; ++i) {
    connections.push_back(
        std::make_shared<uniws::testing::memory_connection>(static_cast<uniws::connection_id>(i)));
    (void)manager.add_connection(connections.back());
    for (std::int64_t t = 0; t < 255; ++t)
      (void)manager.join_thread(static_cast<uniws::connection_id>(i), thread_id(t));
  }
  const std::string extra = thread_id(999);
  const long before = uniws_bench::heap_allocations.load();
  for (auto _ : state) {
    (void)manager.join_thread(0, extra);
    manager.leave_thread(0, extra);
    connections[0]->clear_received();
  }
  state.SetItemsProcessed(state.iterations() * 2);  // changes
  state.counters["allocs_per_change"] = static_cast<double>(uniws_bench::heap_allocations.load() - before) /
                                        static_cast<double>(state.iterations() * 2);
}

void fanout_args(benchmark::internal::Benchmark* b) {
  b->ArgNames({"connections", "burst"});
  for (std::int64_t burst : {1, 64})
    for (std::int64_t n : {1, 10, 100, 10'000}) b->Args({n, burst});
}

BENCHMARK(uniws_manager)->Apply(fanout_args);
BENCHMARK(uniws_stamped)->Apply(fanout_args);
BENCHMARK(chat_multi)->Apply(fanout_args);
BENCHMARK(delivery_metrics_per_write);
BENCHMARK(uniws_emit)->Apply(fanout_args);
BENCHMARK(uniws_emit_history)->Apply(fanout_args);
BENCHMARK(resume_1000_missed);
BENCHMARK(join_leave)->Arg(1)->Arg(120);

int main(int argc, char** argv) {
  return uniws_bench::run_with_ratios(argc, argv, {"chat_multi", "uniws_manager", "uniws_emit"});
}
