#include "jthread.hpp"
#include "spin_barrier.hpp"
#include "stress_scale.hpp"
#include "thread_pool.hpp"

#include <uniws/factory.hpp>
#include <uniws/sync_wait.hpp>
#include <uniws/testing.hpp>

#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <barrier>
#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using uniws::basic_user_context;
using uniws::testing::memory_connection;
using factory_type = uniws::manager_factory<memory_connection>;
using manager_type = uniws::unified_manager<memory_connection>;

namespace {

constexpr int scale = uniws_test::stress_divisor;  // totals are in each test's comment

// A probe whose answer the test sets; counts its calls.
struct scripted_probe {
  enum class answer { available, unavailable, throws };
  std::shared_ptr<std::atomic<answer>> next = std::make_shared<std::atomic<answer>>(answer::available);
  std::shared_ptr<std::atomic<int>> calls = std::make_shared<std::atomic<int>>(0);

  struct awaiter {
    answer a;
    bool await_ready() const noexcept { return true; }
    void await_suspend(std::coroutine_handle<>) const noexcept {}
    bool await_resume() const {
      if (a == answer::throws) throw std::runtime_error("probe: connection refused");
      return a == answer::available;
    }
  };
  awaiter check() const {
    calls->fetch_add(1);
    return awaiter{next->load()};
  }
};

// A probe that answers on another thread (an asynchronous health check).
struct async_probe {
  uniws_test::thread_pool* pool;
  uniws::task<bool> check() const {
    co_await pool->schedule();
    co_return true;
  }
};

}  // namespace

TEST_CASE("sync and async getters return the same manager for one user") {
  factory_type factory;
  auto sync_ref = factory.get_websocket_manager(basic_user_context("alice"));
  auto async_ref = uniws::sync_wait(factory.get_websocket_manager_async(basic_user_context("alice")));
  CHECK(sync_ref == async_ref);
  CHECK(sync_ref.get() == async_ref.get());
  CHECK(sync_ref.user_id() == "alice");
  auto bob = factory.get_websocket_manager(basic_user_context("bob"));
  CHECK_FALSE(bob == sync_ref);
  CHECK(factory.user_count() == 2);
}

TEST_CASE("first access from 64 threads at once creates one manager") {
  for (int round = 0; round < 10; ++round) {
    factory_type factory;
    std::vector<manager_type*> seen(64, nullptr);
    std::vector<uniws::manager_ref<memory_connection>> refs(64);
    std::atomic<int> ready{0};
    {
      std::vector<uniws_test::jthread> threads;
      for (int t = 0; t < 64; ++t) {
        threads.emplace_back([&, t] {
          ready.fetch_add(1);
          while (ready.load() < 64) std::this_thread::yield();
          refs[static_cast<std::size_t>(t)] = factory.get_websocket_manager(basic_user_context("stampede"));
          seen[static_cast<std::size_t>(t)] = refs[static_cast<std::size_t>(t)].get();
        });
      }
    }
    for (auto* p : seen) CHECK(p == seen.front());
    CHECK(factory.user_count() == 1);
  }

  // 64 threads on two cores race in pairs at most, and rarely. So the same first access again,
  // truly simultaneous: one thread per core, meeting at a barrier before each new user.
  const int walkers = static_cast<int>(std::max(2u, std::thread::hardware_concurrency()));
  constexpr std::size_t users = 20'000;
  factory_type factory;
  std::vector<std::vector<manager_type*>> seen(static_cast<std::size_t>(walkers),
                                               std::vector<manager_type*>(users));
  std::vector<std::string> names;
  for (std::size_t i = 0; i < users; ++i) names.push_back("walker-" + std::to_string(i));
  uniws_test::spin_barrier meet(walkers);  // all start each user within nanoseconds of each other
  {
    std::vector<uniws_test::jthread> threads;
    for (int t = 0; t < walkers; ++t)
      threads.emplace_back([&, t] {
        for (std::size_t i = 0; i < users; ++i) {
          meet.arrive_and_wait();
          seen[static_cast<std::size_t>(t)][i] =
              factory.get_websocket_manager(basic_user_context(names[i])).get();
        }
      });
  }
  std::size_t split = 0;
  for (std::size_t i = 0; i < users; ++i)
    for (const auto& s : seen) split += s[i] != seen.front()[i];
  CHECK(split == 0);
  CHECK(factory.user_count() == users);
}

TEST_CASE("first access from 1,000 concurrent coroutines creates one manager") {
  factory_type factory;
  uniws_test::thread_pool pool(4);
  auto session = [](factory_type* f, uniws_test::thread_pool* p) -> uniws::task<manager_type*> {
    co_await p->schedule();  // now on a pool thread, racing the others
    auto ref = co_await f->get_websocket_manager_async(basic_user_context("crowd"));
    co_return ref.get();
  };
  std::vector<uniws::task<manager_type*>> sessions;
  for (int i = 0; i < 1000; ++i) sessions.push_back(session(&factory, &pool));
  const std::vector<manager_type*> managers = uniws::sync_wait(uniws::when_all(std::move(sessions)));
  REQUIRE(managers.size() == 1000);
  for (auto* m : managers) CHECK(m == managers.front());
  CHECK(factory.user_count() == 1);
}

TEST_CASE("a failing or throwing probe means unavailable: counted, reported, never thrown") {
  scripted_probe probe;
  uniws::manager_factory<memory_connection, scripted_probe> factory({}, probe);
  auto ok = uniws::sync_wait(factory.get_websocket_manager_async(basic_user_context("alice")));
  CHECK(ok->available());

  *probe.next = scripted_probe::answer::unavailable;
  auto down = uniws::sync_wait(factory.get_websocket_manager_async(basic_user_context("alice")));
  CHECK(down == ok);  // still the user's one manager
  CHECK_FALSE(down->available());

  *probe.next = scripted_probe::answer::throws;
  uniws::manager_ref<memory_connection> after_throw;
  CHECK_NOTHROW(after_throw =
                    uniws::sync_wait(factory.get_websocket_manager_async(basic_user_context("alice"))));
  CHECK(after_throw == ok);
  CHECK_FALSE(after_throw->available());

  const auto stats = factory.get_stats();
  CHECK(stats.probe_failures == 2);
  CHECK(stats.managers.unavailable_reports == 2);
  CHECK(*probe.calls == 3);

  *probe.next = scripted_probe::answer::available;
  CHECK(uniws::sync_wait(factory.get_websocket_manager_async(basic_user_context("alice")))->available());
  // The synchronous getter does not consult the probe.
  static_cast<void>(factory.get_websocket_manager(basic_user_context("alice")));
  CHECK(*probe.calls == 4);
}

TEST_CASE("an asynchronous probe that completes on another thread") {
  uniws_test::thread_pool pool(1);
  uniws::manager_factory<memory_connection, async_probe> factory({}, async_probe{&pool});
  auto ref = uniws::sync_wait(factory.get_websocket_manager_async(basic_user_context("alice")));
  CHECK(ref.valid());
  CHECK(ref->available());
}

TEST_CASE("the idle sweep removes only managers idle past the TTL with no reference held") {
  factory_type factory({.idle_ttl = std::chrono::seconds(10)});
  const auto t0 = std::chrono::steady_clock::now();
  static_cast<void>(factory.get_websocket_manager(basic_user_context("idle")));
  auto held = factory.get_websocket_manager(basic_user_context("held"));
  {
    auto connected = factory.get_websocket_manager(basic_user_context("connected"));
    REQUIRE(connected->add_connection(std::make_shared<memory_connection>(1)));
  }
  CHECK(factory.sweep_idle(t0) == 0);  // nobody idle for 10 s yet
  CHECK(factory.sweep_idle(t0 + std::chrono::seconds(11)) == 1);
  CHECK(factory.user_count() == 2);  // "held" (a reference) and "connected" (a connection) stay
  held = {};
  CHECK(factory.sweep_idle(t0 + std::chrono::seconds(11)) == 1);
  CHECK(factory.user_count() == 1);
}

TEST_CASE("the idle sweep never drops a live connection (stress)") {
  // Sessions get their user's manager, add a connection, drop the reference, and later get
  // the manager again to remove that connection: it must still be there. A sweeper with a
  // zero TTL removes every manager that has no connection, as fast as it can.
  factory_type factory({.idle_ttl = std::chrono::seconds(0)});
  std::atomic<bool> stop{false};
  std::atomic<long> lost{0}, swept{0};
  // 160,000 cycles: with 40,000 a sweep missing its version check was caught in 13 of 20 runs.
  const int rounds = 160'000 / scale;
  {
    uniws_test::jthread sweeper([&] {
      while (!stop.load()) {
        swept += static_cast<long>(factory.sweep_idle());
        std::this_thread::yield();  // on 2 cores a sweeper that never yields starves the sessions
      }
    });
    std::vector<uniws_test::jthread> sessions;
    for (int t = 0; t < 3; ++t) {
      sessions.emplace_back([&, t] {
        for (int i = 0; i < rounds; ++i) {
          const basic_user_context user("user-" + std::to_string(i % 4));
          const auto id = static_cast<uniws::connection_id>(t * 10'000'000 + i);
          if (!factory.get_websocket_manager(user)->add_connection(std::make_shared<memory_connection>(id)))
            lost.fetch_add(1);
          std::this_thread::yield();
          if (!factory.get_websocket_manager(user)->remove_connection(id)) lost.fetch_add(1);
        }
      });
    }
    sessions.clear();
    stop = true;
  }
  CHECK(lost.load() == 0);
  CHECK(swept.load() > 0);  // the sweeper really raced the sessions
}

// ---- per-user limits (manager_options: max_connections, max_runs, max_threads_per_connection) ----

TEST_CASE("per-user limits: past each bound a refusal is counted, below it again accepted") {
  factory_type factory({.manager = {.max_threads_per_connection = 2, .max_connections = 2, .max_runs = 2}});
  auto m = factory.get_websocket_manager(basic_user_context("alice"));
  auto a = std::make_shared<memory_connection>(1), b = std::make_shared<memory_connection>(2);

  // Connections.
  CHECK(m->add_connection(a));
  CHECK(m->has_room_for_connection());
  CHECK(m->add_connection(b));
  CHECK_FALSE(m->has_room_for_connection());
  CHECK(m->add_connection(std::make_shared<memory_connection>(3)).status == uniws::add_status::user_full);
  CHECK(m->get_stats().connections_refused == 1);
  CHECK(m->remove_connection(2));
  CHECK(m->add_connection(std::make_shared<memory_connection>(3)));

  // Threads of one connection.
  CHECK(m->join_thread(1, "t1"));
  CHECK(m->join_thread(1, "t2"));
  const uniws::join_result third = m->join_thread(1, "t3");
  CHECK_FALSE(third);
  CHECK(third.status == uniws::join_status::too_many_threads);
  CHECK(m->join_thread(1, "t2"));  // joining one already joined is not a new thread
  CHECK(m->join_thread(99, "t1").status == uniws::join_status::refused);
  CHECK(m->get_stats().joins_refused == 1);
  CHECK(m->leave_thread(1, "t1"));
  CHECK(m->join_thread(1, "t3"));

  // Runs in flight, whichever way a run ends.
  {
    auto r1 = m.try_start_run("t2", "r1");
    auto r2 = m.try_start_run("t3", "r2");
    REQUIRE(r1);
    REQUIRE(r2);
    CHECK(m->runs_in_flight() == 2);
    CHECK_FALSE(m.try_start_run("t3", "r3"));
    CHECK(m->get_stats().runs_refused == 1);
    std::move(*r1).complete("done");
    CHECK(m->runs_in_flight() == 1);
    auto r4 = m.try_start_run("t3", "r4");
    REQUIRE(r4);
    auto r5 = m.start_run("t3", "r5");  // start_run starts whatever the count, and counts
    CHECK(m->runs_in_flight() == 3);
    CHECK(m->get_stats().runs_in_flight == 3);
  }  // r2, r4, r5 dropped: each still ends (agent_completed, error), and is released
  CHECK(m->runs_in_flight() == 0);
  CHECK(m.try_start_run("t3", "r6"));
}

TEST_CASE(
    "a cancelled run ends with agent_completed, status cancelled, and thread_has_connection sees joins") {
  factory_type factory;
  auto m = factory.get_websocket_manager(basic_user_context("alice"));
  auto a = std::make_shared<memory_connection>(1);
  REQUIRE(m->add_connection(a));
  CHECK_FALSE(m->thread_has_connection("t1"));
  REQUIRE(m->join_thread(1, "t1"));
  CHECK(m->thread_has_connection("t1"));
  a->clear_received();
  auto run = m.start_run("t1", "r1");
  std::move(run).cancel("nobody watched");
  const auto received = a->received();
  REQUIRE(received.size() == 2);
  CHECK(received[1].text().find(R"("status":"cancelled","reason":"nobody watched")") != std::string::npos);
  CHECK(m->runs_in_flight() == 0);
  CHECK(m->leave_thread(1, "t1"));
  CHECK_FALSE(m->thread_has_connection("t1"));
}

// Four threads ask for a user's one run slot at the same moment (a barrier), 20,000 rounds (/4
// under sanitizers): in no round do two of them get it.
TEST_CASE("max_runs holds when threads ask for the last slot at the same moment (stress)") {
  factory_type factory({.manager = {.max_runs = 1}});
  auto m = factory.get_websocket_manager(basic_user_context("alice"));
  // One racer per core, released together by spinning: the window (a load, then an add) is a
  // few instructions wide; std::barrier's wake-ups, microseconds apart, let it survive runs.
  const int racers = static_cast<int>(std::max(2u, std::min(4u, std::thread::hardware_concurrency())));
  std::atomic<int> winners{0};
  int rounds_won = 0, rounds_overrun = 0;  // written by the barrier's completion only
  uniws_test::spin_barrier ask(racers);
  std::barrier decided(racers, [&]() noexcept {
    rounds_won += winners.load() >= 1;
    rounds_overrun += winners.load() > 1;
    winners = 0;
  });
  {
    std::vector<uniws_test::jthread> threads;
    for (int t = 0; t < racers; ++t)
      threads.emplace_back([&] {
        for (int round = 0; round < 20000 / scale; ++round) {
          ask.arrive_and_wait();
          auto run = m.try_start_run("t", "r");
          if (run) winners.fetch_add(1);
          decided.arrive_and_wait();  // every run of this round is held until all have asked
          if (run) std::move(*run).complete("ok");
        }
      });
  }
  CHECK(rounds_overrun == 0);
  CHECK(rounds_won == 20000 / scale);
  CHECK(m->runs_in_flight() == 0);
}
