#include "jthread.hpp"
#include "stress_scale.hpp"
#include <uniws/registry.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <barrier>
#include <cstdint>
#include <memory>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

using namespace std::string_literals;

namespace {

long live_nodes() { return uniws::detail::registry_stats::live_nodes.load(); }
long pending_retired() { return uniws::detail::epoch_stats::pending.load(); }
void reclaim_all() { uniws::detail::epoch_domain::instance().barrier(); }

constexpr int scale = uniws_test::stress_divisor;  // totals are in each test's comment

struct counted {
  static inline std::atomic<long> alive{0};
  explicit counted(int v) : value(v) { alive.fetch_add(1); }
  counted(const counted&) = delete;
  counted& operator=(const counted&) = delete;
  ~counted() { alive.fetch_sub(1); }
  int value;
};

// Stands in for a user's manager: a connection count and an identity per construction.
struct fake_manager {
  static inline std::atomic<std::uint64_t> next_id{1};
  static inline std::atomic<long> destroyed_with_connections{0};
  fake_manager() : id(next_id.fetch_add(1)) {}
  fake_manager(const fake_manager&) = delete;
  fake_manager& operator=(const fake_manager&) = delete;
  ~fake_manager() {
    if (connections.load() != 0) destroyed_with_connections.fetch_add(1);
  }
  const std::uint64_t id;
  std::atomic<int> connections{0};
};

}  // namespace

TEST_CASE("a reader holding the epoch back does not make every retire rescan the retired list") {
  // While a reader stays in its critical section nothing can be freed. Retiring then must not
  // rescan the growing list at every retire (quadratic): 20,000 retires, a few passes.
  reclaim_all();
  auto& domain = uniws::detail::epoch_domain::instance();
  std::atomic<bool> inside{false}, leave{false};
  uniws_test::jthread reader([&] {
    uniws::detail::epoch_guard guard;
    inside = true;
    while (!leave.load()) std::this_thread::yield();
  });
  while (!inside.load()) std::this_thread::yield();
  static std::atomic<long> deleted{0};
  deleted = 0;
  const long pending_before = pending_retired();
  const long passes_before = uniws::detail::epoch_stats::collections.load();
  constexpr long retires = 20'000;
  for (long i = 0; i < retires; ++i)
    domain.retire(new int(1), [](void* p) noexcept {
      delete static_cast<int*>(p);
      deleted.fetch_add(1);
    });
  const long passes = uniws::detail::epoch_stats::collections.load() - passes_before;
  CHECK(passes <= 32);  // a pass or two while it holds; one at every retire would be 19,937
  CHECK(passes >= 1);
  CHECK(pending_retired() - pending_before == retires);  // the reader holds back every one
  CHECK(deleted.load() == 0);
  leave = true;
  reader.join();
  reclaim_all();
  CHECK(deleted.load() == retires);
  CHECK(pending_retired() == pending_before);
}

TEST_CASE("a sweep removing many entries passes over its retired list a few times, not once per entry") {
  // The sweep's own guard holds the epoch while it removes: nothing it retires can be freed
  // until it ends, so a pass per removal would make a sweep quadratic (measured before the
  // fix: 100k idle users swept in 4.3 s; uniws_bench_registry --benchmark_filter=sweep).
  reclaim_all();
  const long nodes_before = live_nodes();
  {
    uniws::user_registry<std::uint64_t, int> reg;
    constexpr std::uint64_t users = 20'000;
    for (std::uint64_t i = 0; i < users; ++i) static_cast<void>(reg.get_or_create(i, [] { return 0; }));
    const long passes_before = uniws::detail::epoch_stats::collections.load();
    CHECK(reg.sweep([](int&) { return true; }) == users);
    CHECK(uniws::detail::epoch_stats::collections.load() - passes_before <= 32);
    CHECK(reg.size() == 0);
  }
  reclaim_all();
  CHECK(live_nodes() == nodes_before);
}

TEST_CASE("get_or_create constructs once and returns the same entry") {
  uniws::user_registry<std::uint64_t, counted> reg;
  int made = 0;
  auto make = [&made] { return counted(++made); };
  auto a = reg.get_or_create(std::uint64_t{7}, make);
  auto b = reg.get_or_create(std::uint64_t{7}, make);
  CHECK(made == 1);
  CHECK(a == b);
  CHECK(a->value == 1);
  CHECK(a.key() == 7);
  CHECK(reg.size() == 1);
  auto c = reg.get_or_create(std::uint64_t{8}, make);
  CHECK(made == 2);
  CHECK_FALSE(a == c);
  CHECK(reg.size() == 2);
}

TEST_CASE("find returns a ready entry or nothing") {
  uniws::user_registry<std::string, int> reg;
  CHECK_FALSE(reg.find("alice"s));
  auto h = reg.get_or_create("alice"s, [] { return 41; });
  ++*h;
  auto found = reg.find(std::string_view("alice"));  // heterogeneous: no std::string built
  REQUIRE(found);
  CHECK(*found == 42);
  CHECK(found == h);
  CHECK_FALSE(reg.find(std::string_view("bob")));
  auto again = reg.get_or_create(std::string_view("alice"), [] { return 0; });
  CHECK(*again == 42);
}

TEST_CASE("a throwing make creates nothing and the next caller creates") {
  uniws::user_registry<std::string, int> reg;
  CHECK_THROWS_WITH(reg.get_or_create("u"s, []() -> int { throw std::runtime_error("no manager"); }),
                    "no manager");
  CHECK(reg.size() == 0);
  CHECK_FALSE(reg.find("u"s));
  auto h = reg.get_or_create("u"s, [] { return 5; });
  CHECK(*h == 5);
  CHECK(reg.size() == 1);
}

TEST_CASE("erase_if removes only an idle entry that satisfies the predicate") {
  const long alive_before = counted::alive.load();
  {
    uniws::user_registry<int, counted> reg;
    auto h = reg.get_or_create(1, [] { return counted(10); });
    CHECK_FALSE(reg.erase_if(1, [](counted&) { return true; }));  // a handle is alive
    CHECK_FALSE(reg.erase_if(2, [](counted&) { return true; }));  // absent
    h = {};
    CHECK_FALSE(reg.erase_if(1, [](counted& c) { return c.value == 11; }));  // predicate false
    CHECK(reg.size() == 1);
    CHECK(reg.erase_if(1, [](counted& c) { return c.value == 10; }));
    CHECK(reg.size() == 0);
    CHECK_FALSE(reg.find(1));
    reclaim_all();
    CHECK(counted::alive.load() == alive_before);  // the value was destroyed once reclaimed
    auto fresh = reg.get_or_create(1, [] { return counted(20); });
    CHECK(fresh->value == 20);
  }
  reclaim_all();
  CHECK(counted::alive.load() == alive_before);
}

TEST_CASE("a handle keeps its value alive after the registry is gone") {
  const long alive_before = counted::alive.load();
  uniws::user_registry<int, counted>::handle survivor;
  {
    uniws::user_registry<int, counted> reg;
    survivor = reg.get_or_create(3, [] { return counted(33); });
    auto other = reg.get_or_create(4, [] { return counted(44); });
  }
  CHECK(counted::alive.load() == alive_before + 1);
  CHECK(survivor->value == 33);
  survivor = {};
  CHECK(counted::alive.load() == alive_before);
}

TEST_CASE("sweep removes every idle entry and for_each visits every ready one") {
  uniws::user_registry<int, int> reg;
  std::vector<uniws::user_registry<int, int>::handle> pinned;
  for (int i = 0; i < 1000; ++i) {
    auto h = reg.get_or_create(i, [i] { return i; });
    if (i % 10 == 0) pinned.push_back(h);
  }
  long sum = 0;
  int visited = 0;
  reg.for_each([&](const int& key, int& value) {
    CHECK(key == value);
    sum += value;
    ++visited;
  });
  CHECK(visited == 1000);
  CHECK(sum == 999 * 1000 / 2);

  const std::size_t removed = reg.sweep([](int& v) { return v % 2 == 0; });
  CHECK(removed == 500 - 100);  // even values, minus the pinned multiples of 10
  CHECK(reg.size() == 600);
  for (int i = 0; i < 1000; ++i) CHECK(static_cast<bool>(reg.find(i)) == (i % 2 != 0 || i % 10 == 0));
}

TEST_CASE("the table grows and every key stays reachable") {
  uniws::user_registry<std::uint64_t, std::uint64_t> reg;
  const std::size_t initial = reg.bucket_count();
  constexpr std::uint64_t n = 100'000;
  for (std::uint64_t i = 0; i < n; ++i) static_cast<void>(reg.get_or_create(i, [i] { return i * 3; }));
  CHECK(reg.size() == n);
  CHECK(reg.bucket_count() > initial);
  CHECK(reg.bucket_count() >= n);  // load factor <= 1
  std::uint64_t bad = 0;
  for (std::uint64_t i = 0; i < n; ++i) {
    auto h = reg.find(i);
    if (!h || *h != i * 3) ++bad;
  }
  CHECK(bad == 0);
}

TEST_CASE("stampede: many threads asking for the same new keys construct each exactly once") {
  constexpr int threads = 4;
  const int keys = 20'000 / scale;
  reclaim_all();  // what earlier tests retired is not this test's to count
  const long nodes_before = live_nodes();
  for (int round = 0; round < 2; ++round) {
    uniws::user_registry<std::string, int> reg;
    std::atomic<int> constructions{0};
    std::atomic<long> mismatches{0};
    std::barrier start(threads);
    {
      std::vector<uniws_test::jthread> pool;
      for (int t = 0; t < threads; ++t) {
        pool.emplace_back([&] {
          start.arrive_and_wait();
          for (int k = 0; k < keys; ++k) {  // every thread walks the same keys in step
            const std::string key = "user-" + std::to_string(k);
            auto h = reg.get_or_create(key, [&constructions, k] {
              constructions.fetch_add(1, std::memory_order_relaxed);
              return k;
            });
            if (*h != k) mismatches.fetch_add(1);
          }
        });
      }
    }
    CHECK(constructions.load() == keys);
    CHECK(mismatches.load() == 0);
    CHECK(reg.size() == static_cast<std::size_t>(keys));
  }
  reclaim_all();
  CHECK(live_nodes() == nodes_before);
}

TEST_CASE("churn: create/remove cycles leave memory bounded") {
  // 1,000,000 create+remove cycles (250,000 under sanitizers) over 64 keys on 2 threads plus
  // a sweeper; afterwards live entries and retired-but-unreclaimed nodes return to a bound.
  reclaim_all();  // what earlier tests retired is not this test's to count
  const long nodes_before = live_nodes();
  uniws::user_registry<std::uint64_t, int> reg;
  const int cycles_per_thread = 500'000 / scale;
  std::atomic<bool> stop{false};
  long peak_pending = 0;
  {
    uniws_test::jthread sweeper([&] {
      while (!stop.load()) {
        static_cast<void>(reg.sweep([](int&) { return true; }));
        std::this_thread::yield();
      }
    });
    std::vector<uniws_test::jthread> workers;
    for (int t = 0; t < 2; ++t) {
      workers.emplace_back([&, t] {
        for (int i = 0; i < cycles_per_thread; ++i) {
          const auto key = static_cast<std::uint64_t>((i * 7 + t) % 64);
          {
            auto h = reg.get_or_create(key, [i] { return i; });
          }
          static_cast<void>(reg.erase_if(key, [](int&) { return true; }));
        }
      });
    }
    for (int i = 0; i < 200; ++i) {
      peak_pending = std::max(peak_pending, pending_retired());
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    workers.clear();
    stop = true;
  }
  static_cast<void>(reg.sweep([](int&) { return true; }));
  CHECK(reg.size() == 0);
  reclaim_all();
  // Only this thread's and exited threads' retired lists are reclaimable; nothing else runs.
  CHECK(pending_retired() == 0);
  CHECK(live_nodes() == nodes_before);
  // While running, the unreclaimed backlog stayed far below the number of cycles.
  CHECK(peak_pending < 100'000);
  // Each removal left a tombstone; migrations purged them instead of growing the table.
  CHECK(reg.bucket_count() <= 256);
}

TEST_CASE("lookups of existing keys never miss while other threads grow the table") {
  // Two writers insert 200,000 new keys (50,000 under sanitizers), which migrates the table
  // from 16 slots through ~15 doublings; two readers meanwhile find each of 1,000 keys
  // inserted before, over and over. A migration that hid an entry for a moment fails this.
  uniws::user_registry<std::uint64_t, std::uint64_t> reg;
  constexpr std::uint64_t old_keys = 1000;
  for (std::uint64_t k = 0; k < old_keys; ++k) static_cast<void>(reg.get_or_create(k, [k] { return k; }));
  const std::uint64_t per_writer = 100'000 / scale;
  std::atomic<bool> writing{true};
  std::atomic<long> misses{0}, wrong{0}, lookups{0};
  const std::size_t buckets_before = reg.bucket_count();
  {
    std::vector<uniws_test::jthread> readers;
    for (int r = 0; r < 2; ++r) {
      readers.emplace_back([&, r] {
        long local = 0;
        for (std::uint64_t i = static_cast<std::uint64_t>(r); writing.load(std::memory_order_relaxed); ++i) {
          const std::uint64_t k = i % old_keys;
          auto h = (i & 1) ? reg.find(k) : reg.get_or_create(k, [] { return ~std::uint64_t{0}; });
          if (!h) {
            misses.fetch_add(1);
          } else if (*h != k) {
            wrong.fetch_add(1);
          }
          ++local;
        }
        lookups.fetch_add(local);
      });
    }
    {
      std::vector<uniws_test::jthread> writers;
      for (std::uint64_t w = 0; w < 2; ++w) {
        writers.emplace_back([&, w] {
          for (std::uint64_t i = 0; i < per_writer; ++i) {
            const std::uint64_t k = old_keys + w * per_writer + i;
            static_cast<void>(reg.get_or_create(k, [k] { return k; }));
          }
        });
      }
    }
    writing = false;
  }
  CHECK(misses.load() == 0);
  CHECK(wrong.load() == 0);
  CHECK(lookups.load() > 0);
  CHECK(reg.size() == old_keys + 2 * per_writer);
  CHECK(reg.bucket_count() > buckets_before);  // it did migrate, several times
  std::uint64_t bad = 0;
  for (std::uint64_t k = 0; k < old_keys + 2 * per_writer; ++k) {
    auto h = reg.find(k);
    if (!h || *h != k) ++bad;
  }
  CHECK(bad == 0);
}

TEST_CASE("make() failing while the table migrates loses nothing and leaks nothing") {
  // Threads create keys in a growing table; every third make() throws. Entries whose make()
  // threw must be absent, the rest present once, and every node freed in the end.
  reclaim_all();  // what earlier tests retired is not this test's to count
  const long nodes_before = live_nodes();
  const long alive_before = counted::alive.load();
  {
    uniws::user_registry<std::uint64_t, counted> reg;
    constexpr int threads = 3;
    const int per_thread = 30'000 / scale;
    std::atomic<long> thrown{0};
    {
      std::vector<uniws_test::jthread> pool;
      for (int t = 0; t < threads; ++t) {
        pool.emplace_back([&, t] {
          for (int i = 0; i < per_thread; ++i) {
            const auto k = static_cast<std::uint64_t>(t * per_thread + i);
            try {
              static_cast<void>(reg.get_or_create(k, [k]() -> counted {
                if (k % 3 == 0) throw std::runtime_error("refused");
                return counted(static_cast<int>(k));
              }));
            } catch (const std::runtime_error&) {
              thrown.fetch_add(1);
            }
          }
        });
      }
    }
    const auto total = static_cast<std::uint64_t>(threads * per_thread);
    CHECK(thrown.load() == static_cast<long>((total + 2) / 3));
    CHECK(reg.size() == total - (total + 2) / 3);
    std::uint64_t bad = 0;
    for (std::uint64_t k = 0; k < total; ++k) {
      auto h = reg.find(k);
      if (static_cast<bool>(h) != (k % 3 != 0) || (h && h->value != static_cast<int>(k))) ++bad;
    }
    CHECK(bad == 0);
  }
  reclaim_all();
  CHECK(counted::alive.load() == alive_before);
  CHECK(live_nodes() == nodes_before);
}

TEST_CASE("sweep never removes a user while another thread adds a connection to it") {
  // Workers repeatedly: get the user's entry, add a connection, drop the handle; later get
  // it again and remove that connection, checking it is the same manager. A sweeper removes
  // users whose connection count is zero. A registry that let the sweep win against a
  // concurrent get_or_create + add would destroy a manager with a connection, or hand the
  // worker a different manager for its removal.
  using registry = uniws::user_registry<std::uint64_t, fake_manager>;
  registry reg;
  constexpr int users = 8;
  constexpr int threads = 3;
  const int rounds = 200'000 / scale;
  std::atomic<long> wrong_manager{0};
  std::atomic<long> negative{0};
  std::atomic<bool> stop{false};
  std::atomic<long> swept{0};
  fake_manager::destroyed_with_connections = 0;
  {
    uniws_test::jthread sweeper([&] {
      while (!stop.load()) {
        // The predicate lingers (a few hundred loads) once it has said "idle": a worker on the other core
        // then gets the entry, adds a connection and gives its handle back between the check and the removal,
        // the exact interleaving the removal's version check must refuse (without the pause the window is a
        // few instructions wide: a missing check was caught in 17 of 20 runs).
        swept += static_cast<long>(reg.sweep([](fake_manager& m) {
          const bool idle = m.connections.load() == 0;
          if (idle)
            for (int spin = 0; spin < 300 && m.connections.load(std::memory_order_relaxed) == 0; ++spin) {
            }
          return idle;
        }));
        std::this_thread::yield();  // on 2 cores a sweeper that never yields starves the workers
      }
    });
    std::vector<uniws_test::jthread> workers;
    for (int t = 0; t < threads; ++t) {
      workers.emplace_back([&, t] {
        for (int i = 0; i < rounds; ++i) {
          const auto user = static_cast<std::uint64_t>((i + t) % users);
          std::uint64_t id = 0;
          {
            auto h = reg.get_or_create(user, [] { return fake_manager(); });
            h->connections.fetch_add(1);
            id = h->id;
          }
          std::this_thread::yield();  // the sweeper gets its chance while the connection is open
          {
            auto h = reg.get_or_create(user, [] { return fake_manager(); });
            if (h->id != id) wrong_manager.fetch_add(1);
            if (h->connections.fetch_sub(1) <= 0) negative.fetch_add(1);
          }
        }
      });
    }
    workers.clear();
    stop = true;
  }
  CHECK(wrong_manager.load() == 0);
  CHECK(negative.load() == 0);
  static_cast<void>(reg.sweep([](fake_manager& m) { return m.connections.load() == 0; }));
  reclaim_all();
  CHECK(fake_manager::destroyed_with_connections.load() == 0);
  CHECK(swept.load() > 0);  // the sweeper did remove idle users meanwhile: the race was live
}

TEST_CASE("lookups of other keys proceed while one key's value is being built") {
  uniws::user_registry<int, int> reg;
  static_cast<void>(reg.get_or_create(1, [] { return 1; }));
  std::atomic<bool> building{false};
  std::atomic<bool> release_builder{false};
  uniws_test::jthread builder([&] {
    auto h = reg.get_or_create(2, [&] {
      building = true;
      while (!release_builder.load()) std::this_thread::yield();
      return 2;
    });
    CHECK(*h == 2);
  });
  while (!building.load()) std::this_thread::yield();
  // Key 1 is found and key 3 created while key 2's make() is still running.
  CHECK(*reg.get_or_create(1, [] { return -1; }) == 1);
  CHECK(*reg.get_or_create(3, [] { return 3; }) == 3);
  CHECK_FALSE(reg.find(2));  // not visible half-built
  release_builder = true;
  builder.join();
  CHECK(*reg.find(2) == 2);
}

namespace {
struct keyed {
  explicit keyed(std::uint64_t k) : key(k) { alive.fetch_add(1); }
  keyed(const keyed&) = delete;
  keyed& operator=(const keyed&) = delete;
  ~keyed() { alive.fetch_sub(1); }
  std::uint64_t key;
  static inline std::atomic<long> alive{0};
};
}  // namespace

TEST_CASE("ten million mixed operations from four threads: every handle holds its own key's value") {
  // 10^7 get_or_create / find / erase_if in total, in every build (the tsan preset included:
  // issue 3 asks that the concurrency tests run at least that many under ThreadSanitizer).
  constexpr int threads = 4, ops_per_thread = 2'500'000, keys = 4096;
  std::atomic<long> wrong{0}, erased{0};
  {
    uniws::user_registry<std::uint64_t, keyed> registry;
    {
      std::vector<uniws_test::jthread> pool;
      for (int t = 0; t < threads; ++t)
        pool.emplace_back([&, t] {
          std::uint64_t x = 0x9E3779B97F4A7C15ull * static_cast<std::uint64_t>(t + 1);
          long local_wrong = 0, local_erased = 0;
          for (int i = 0; i < ops_per_thread; ++i) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            const std::uint64_t k = x % keys;
            const unsigned op = static_cast<unsigned>(x >> 40) % 10;
            if (op < 6) {
              auto h = registry.get_or_create(k, [k] { return keyed(k); });
              local_wrong += h->key != k;
            } else if (op < 9) {
              if (auto h = registry.find(k)) local_wrong += h->key != k;
            } else {
              local_erased += registry.erase_if(k, [](const keyed&) { return true; });
            }
          }
          wrong.fetch_add(local_wrong);
          erased.fetch_add(local_erased);
        });
    }
    CHECK(wrong == 0);
    CHECK(erased > 0);
    std::size_t visited = 0;
    registry.for_each([&](const std::uint64_t& k, keyed& v) {
      ++visited;
      CHECK(v.key == k);
    });
    CHECK(visited == registry.size());
    CHECK(visited <= static_cast<std::size_t>(keys));
  }
  reclaim_all();
  CHECK(keyed::alive == 0);  // every value built was destroyed: nothing leaked, nothing twice
}
