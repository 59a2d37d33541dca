// uniws_bench_registry: uniws::user_registry against the concurrent maps people reach for,
// on the registry's workload: 100k users pre-populated; 95% get_or_create of an existing
// user, 5% of a new one; a second mix also erases 1%. u64 and "user-N" string keys; 1, 2
// and 8 threads (8 on 2 cores is oversubscribed: a preempted lock holder stalls the rest).
//
// Every peer does the same work per operation: get-or-create the entry, read a field of
// the value through whatever keeps it alive (a handle, a shared_ptr, an accessor). And the
// same operations: a case runs a fixed number of them (--ops, split over its threads), so
// every peer creates the same new keys and ends on the same table size. Timed by duration
// instead, a faster peer would create more keys and be measured on a bigger table.
#include "ratio_reporter.hpp"

#include <uniws/registry.hpp>

#include <benchmark/benchmark.h>
#include <cds/container/michael_kvlist_hp.h>
#include <cds/container/michael_map.h>
#include <cds/gc/hp.h>
#include <cds/init.h>
#include <tbb/concurrent_hash_map.h>

#include <array>
#include <algorithm>
#include <atomic>
#include <barrier>
#include <chrono>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <cstdint>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <unordered_map>
#include <vector>

namespace {

constexpr std::size_t prepopulated = 100'000;
constexpr std::size_t key_pool = prepopulated + 4'000'000;  // new keys wrap around past this

struct user_state {  // what a registry would hold per user
  std::uint64_t id = 0;
  std::uint64_t payload = 0;
};

// Keys are built once, outside the timed loops, so no case pays for formatting them.
template <class Key>
const std::vector<Key>& keys() {
  static const std::vector<Key> pool = [] {
    std::vector<Key> v;
    v.reserve(key_pool);
    for (std::size_t i = 0; i < key_pool; ++i) {
      if constexpr (std::is_same_v<Key, std::string>) {
        v.push_back("user-" + std::to_string(i));
      } else {
        v.push_back(static_cast<Key>(i));
      }
    }
    return v;
  }();
  return pool;
}

template <class Key>
struct string_hash {
  std::size_t operator()(const Key& k) const noexcept {
    return static_cast<std::size_t>(uniws::detail::registry_hash<Key>{}(k));
  }
};

// ---- peers ----

template <class Key>
class uniws_registry {
 public:
  std::uint64_t get_or_create(const Key& k) {
    auto h = map_.get_or_create(k, [] { return user_state{1, 0}; });
    return h->id;
  }
  void erase(const Key& k) {
    static_cast<void>(map_.erase_if(k, [](user_state&) { return true; }));
  }

 private:
  uniws::user_registry<Key, user_state> map_;
};

template <class Key>
class mutex_map {
 public:
  std::uint64_t get_or_create(const Key& k) {
    std::shared_ptr<user_state> v;
    {
      std::lock_guard lock(mutex_);
      auto& slot = map_[k];
      if (!slot) slot = std::make_shared<user_state>(user_state{1, 0});
      v = slot;
    }
    return v->id;
  }
  void erase(const Key& k) {
    std::lock_guard lock(mutex_);
    map_.erase(k);
  }

 private:
  std::mutex mutex_;
  std::unordered_map<Key, std::shared_ptr<user_state>, string_hash<Key>> map_;
};

template <class Key>
class shared_mutex_map {
 public:
  std::uint64_t get_or_create(const Key& k) {
    std::shared_ptr<user_state> v;
    {
      std::shared_lock lock(mutex_);
      if (auto it = map_.find(k); it != map_.end()) v = it->second;
    }
    if (!v) {
      std::lock_guard lock(mutex_);
      auto& slot = map_[k];
      if (!slot) slot = std::make_shared<user_state>(user_state{1, 0});
      v = slot;
    }
    return v->id;
  }
  void erase(const Key& k) {
    std::lock_guard lock(mutex_);
    map_.erase(k);
  }

 private:
  std::shared_mutex mutex_;
  std::unordered_map<Key, std::shared_ptr<user_state>, string_hash<Key>> map_;
};

template <class Key>
class sharded_map {
 public:
  std::uint64_t get_or_create(const Key& k) {
    const std::size_t h = string_hash<Key>{}(k);
    shard& s = shards_[h % shards_.size()];
    std::shared_ptr<user_state> v;
    {
      std::lock_guard lock(s.mutex);
      auto& slot = s.map[k];
      if (!slot) slot = std::make_shared<user_state>(user_state{1, 0});
      v = slot;
    }
    return v->id;
  }
  void erase(const Key& k) {
    shard& s = shards_[string_hash<Key>{}(k) % shards_.size()];
    std::lock_guard lock(s.mutex);
    s.map.erase(k);
  }

 private:
  struct alignas(64) shard {
    std::mutex mutex;
    std::unordered_map<Key, std::shared_ptr<user_state>, string_hash<Key>> map;
  };
  std::array<shard, 64> shards_;
};

template <class Key>
class tbb_map {
 public:
  std::uint64_t get_or_create(const Key& k) {
    typename map_type::const_accessor access;
    if (map_.insert(access, k)) {  // inserted a default value: fill it in under the write lock
      access.release();
      typename map_type::accessor write;
      if (map_.find(write, k)) write->second = user_state{1, 0};
      return 1;
    }
    return access->second.id;
  }
  void erase(const Key& k) { map_.erase(k); }

 private:
  struct hash_compare {
    std::size_t hash(const Key& k) const { return string_hash<Key>{}(k); }
    bool equal(const Key& a, const Key& b) const { return a == b; }
  };
  using map_type = tbb::concurrent_hash_map<Key, user_state, hash_compare>;
  map_type map_;
};

// libcds' MichaelHashMap over MichaelKVList with hazard pointers. It does not grow: it is
// sized for the most keys a run creates.
template <class Key>
class cds_michael_map {
 public:
  cds_michael_map() : map_(key_pool, 1) {}
  std::uint64_t get_or_create(const Key& k) {
    std::uint64_t id = 0;
    if (map_.find(k, [&id](auto& item) { id = item.second.id; })) return id;
    map_.insert(k, user_state{1, 0});
    return 1;
  }
  void erase(const Key& k) { map_.erase(k); }

 private:
  struct list_traits : cds::container::michael_list::traits {
    using less = std::less<Key>;
  };
  struct map_traits : cds::container::michael_map::traits {
    using hash = string_hash<Key>;
  };
  using list_type = cds::container::MichaelKVList<cds::gc::HP, Key, user_state, list_traits>;
  cds::container::MichaelHashMap<cds::gc::HP, list_type, map_traits> map_;
};

// ---- the workload ----

struct xorshift {
  std::uint64_t s;
  std::uint64_t operator()() noexcept {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return s;
  }
};

// The map a case's threads share; replaced (and the old one freed) by the next case's setup,
// when the previous case's threads have all been joined.
template <class Map>
struct shared_instance {
  static inline std::unique_ptr<Map> map;
};

std::int64_t total_ops = 2'000'000;  // per case; --ops=N

// A case's threads meet at a barrier before and after their operations; the barriers'
// completions stamp the wall clock once for all. Google Benchmark's own per-thread timers
// start when each thread first runs after its start barrier: with 8 threads on 2 cores,
// threads that wait for a core would count less than the wall time, inflating throughput
// (more for the faster peer). Each thread reports the shared wall time as manual time.
struct wall_clock {
  using clock = std::chrono::steady_clock;
  struct stamp {
    clock::time_point* at;
    void operator()() noexcept { *at = clock::now(); }
  };
  explicit wall_clock(std::ptrdiff_t threads)
      : start_line(threads, stamp{&start}), finish_line(threads, stamp{&finish}) {}
  clock::time_point start, finish;
  std::barrier<stamp> start_line, finish_line;
};
std::unique_ptr<wall_clock> case_clock;  // replaced by each case's thread 0 before any thread starts

template <template <class> class Peer, class Key, int ErasePercent>
void run(benchmark::State& state) {
  using map_type = Peer<Key>;
  const auto& pool = keys<Key>();
  const bool uses_cds = std::is_same_v<map_type, cds_michael_map<Key>>;
  if (uses_cds) cds::threading::Manager::attachThread();
  if (state.thread_index() == 0) {
    shared_instance<map_type>::map = std::make_unique<map_type>();
    for (std::size_t i = 0; i < prepopulated; ++i) shared_instance<map_type>::map->get_or_create(pool[i]);
    case_clock = std::make_unique<wall_clock>(state.threads());
  }
  // Google Benchmark lets no thread into its loop before thread 0's setup above is done.
  std::uint64_t sink = 0;
  xorshift rng{0x9e3779b97f4a7c15ULL * static_cast<std::uint64_t>(state.thread_index() + 1)};
  const auto threads = static_cast<std::size_t>(state.threads());
  const std::int64_t ops = std::max<std::int64_t>(1, total_ops / state.threads());
  std::size_t next_new = prepopulated + static_cast<std::size_t>(state.thread_index());
  for (auto _ : state) {  // one iteration per thread: all of its operations
    map_type& map = *shared_instance<map_type>::map;
    wall_clock& wall = *case_clock;
    wall.start_line.arrive_and_wait();
    for (std::int64_t op = 0; op < ops; ++op) {
      const std::uint64_t r = rng();
      const auto roll = static_cast<int>(r % 100);
      if (roll < ErasePercent) {
        map.erase(pool[(r >> 8) % prepopulated]);
      } else if (roll < 5 + ErasePercent) {
        sink += map.get_or_create(pool[next_new]);
        next_new += threads;
        if (next_new >= key_pool) next_new = prepopulated + static_cast<std::size_t>(state.thread_index());
      } else {
        sink += map.get_or_create(pool[(r >> 8) % prepopulated]);
      }
    }
    wall.finish_line.arrive_and_wait();
    state.SetIterationTime(std::chrono::duration<double>(wall.finish - wall.start).count());
  }
  benchmark::DoNotOptimize(sink);
  state.SetItemsProcessed(ops);  // summed over the threads
  if (uses_cds) cds::threading::Manager::detachThread();
}

// A sweep of 100k idle users in one call: its own epoch guard holds reclamation back until it
// ends, which once made every removal rescan the retired list (quadratic). Timed alone.
void sweep_idle_users(benchmark::State& state) {
  const auto& pool = keys<std::uint64_t>();
  for (auto _ : state) {
    uniws::user_registry<std::uint64_t, user_state> map;
    for (std::size_t i = 0; i < prepopulated; ++i)
      static_cast<void>(map.get_or_create(pool[i], [] { return user_state{1, 0}; }));
    const auto start = std::chrono::steady_clock::now();
    const std::size_t removed = map.sweep([](user_state&) { return true; });
    const auto finish = std::chrono::steady_clock::now();
    if (removed != prepopulated) state.SkipWithError("the sweep left users behind");
    state.SetIterationTime(std::chrono::duration<double>(finish - start).count());
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * prepopulated));
}

template <template <class> class Peer>
void register_peer(const char* name) {
  auto add = [name](const char* workload, void (*fn)(benchmark::State&)) {
    for (int threads : {1, 2, 8}) {
      benchmark::RegisterBenchmark((std::string(name) + "/" + workload).c_str(), fn)
          ->Threads(threads)
          ->Iterations(1)
          ->UseManualTime();
    }
  };
  add("u64/get95_new5", &run<Peer, std::uint64_t, 0>);
  add("u64/get94_new5_erase1", &run<Peer, std::uint64_t, 1>);
  add("str/get95_new5", &run<Peer, std::string, 0>);
  add("str/get94_new5_erase1", &run<Peer, std::string, 1>);
}

}  // namespace

int main(int argc, char** argv) {
  // --ops=N: operations per case (the CI smoke test runs few).
  for (int i = 1; i < argc; ++i) {
    if (std::strncmp(argv[i], "--ops=", 6) == 0) {
      total_ops = std::atoll(argv[i] + 6);
      for (int j = i; j + 1 < argc; ++j) argv[j] = argv[j + 1];
      --argc;
      break;
    }
  }
  cds::Initialize();
  int rc = 0;
  {
    cds::gc::HP hazard_pointer_gc(16, 64);
    cds::threading::Manager::attachThread();
    static_cast<void>(keys<std::uint64_t>());
    static_cast<void>(keys<std::string>());
    register_peer<uniws_registry>("uniws");
    benchmark::RegisterBenchmark("uniws/sweep_100k_idle", &sweep_idle_users)
        ->UseManualTime()
        ->Unit(benchmark::kMillisecond);
    register_peer<sharded_map>("sharded_mutex");
    register_peer<tbb_map>("tbb_chm");
    register_peer<cds_michael_map>("cds_michael_hp");
    register_peer<mutex_map>("mutex");
    register_peer<shared_mutex_map>("shared_mutex");
    rc = uniws_bench::run_with_ratios(argc, argv, {"sharded_mutex", "tbb_chm"});
    shared_instance<cds_michael_map<std::uint64_t>>::map.reset();
    shared_instance<cds_michael_map<std::string>>::map.reset();
    cds::threading::Manager::detachThread();
  }
  cds::Terminate();
  return rc;
}
