// uniws/detail/epoch.hpp - epoch-based safe memory reclamation.
//
// Shaped like C++26 <rcu>: a domain that is BasicLockable for readers (lock/unlock, here
// epoch_guard), retire(p, deleter) for writers, and barrier() to run every deleter that can
// run. So the implementation can later be swapped for std::rcu_domain.
//
// Readers announce the global epoch on entry; an object retired in epoch e is deleted once
// the global epoch reaches e + 2, i.e. once every reader that could have seen it has left.
// The epoch advances only when every active reader has announced the current one.
// A reader preempted inside its critical section delays reclamation (never correctness);
// a thread outside any critical section whose backlog passes backlog_limit yields at each
// retire, so the reader gets a core back and the delay does not become memory.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <thread>
#include <utility>
#include <vector>

namespace uniws::detail {

#if defined(UNIWS_TEST_COUNTERS)
struct epoch_stats {
  static inline std::atomic<long> pending{0};      // retired, deleter not yet run
  static inline std::atomic<long> collections{0};  // passes over a retired list
};
#endif

class epoch_domain {
 public:
  using deleter_fn = void (*)(void*) noexcept;

  /// The process-wide domain. Constant-initialised and never destroyed (it has no
  /// destructor), so objects retired by thread_local or static destructors late in shutdown
  /// still have somewhere to go, and reaching it costs no initialisation check.
  static epoch_domain& instance() noexcept { return default_domain; }

  epoch_domain(const epoch_domain&) = delete;
  epoch_domain& operator=(const epoch_domain&) = delete;

  /// Enters a read-side critical section (re-entrant).
  void lock() noexcept {
    thread_record& r = record();
    if (r.nesting++ == 0) {
      // seq_cst store: the announcement must be visible before this reader loads any
      // pointer it will dereference (a StoreLoad edge). TSan models it, unlike a fence.
      r.epoch.store(global_epoch_.load(std::memory_order_seq_cst), std::memory_order_seq_cst);
    }
  }

  void unlock() noexcept {
    thread_record& r = record();
    if (--r.nesting == 0) r.epoch.store(quiescent, std::memory_order_release);
  }

  /// Hands `p` to `deleter` once no reader can still hold it.
  void retire(void* p, deleter_fn deleter) noexcept {
#if defined(UNIWS_TEST_COUNTERS)
    epoch_stats::pending.fetch_add(1, std::memory_order_relaxed);
#endif
    const std::uint64_t now = global_epoch_.load(std::memory_order_seq_cst);
    if (thread_state == state::exited) {  // late in thread teardown: straight to the orphans
      push_orphans(retired_list{retired{p, deleter, now}});
      return;
    }
    thread_record& r = record();
    r.retired.push_back(retired{p, deleter, now});  // bad_alloc here terminates (noexcept)
    if (r.retired.size() < reclaim_threshold) return;
    collect(r);
    // A reader preempted inside its critical section holds everything back. Past this
    // backlog, give the core away at each retire so that reader can run and leave: memory
    // stays bounded by scheduling, not by how fast this thread can retire. Not from inside a
    // critical section: there this thread holds its own backlog back, and a bulk removal
    // (a sweep) is bounded by its own size.
    if (r.retired.size() >= backlog_limit && r.nesting == 0) std::this_thread::yield();
  }

  /// Waits until every reader active now has left its critical section (not callable from
  /// inside one).
  void synchronize() noexcept {
    for (int i = 0; i < 2; ++i) {
      const std::uint64_t target = global_epoch_.load(std::memory_order_seq_cst) + 1;
      while (global_epoch_.load(std::memory_order_seq_cst) < target) {
        if (!try_advance()) std::this_thread::yield();
      }
    }
  }

  /// Runs every deleter that may run: this thread's and the orphans of exited threads.
  /// Other live threads' retired objects wait for those threads. For tests and shutdown.
  void barrier() noexcept {
    synchronize();
    collect(record());
  }

 private:
  static constexpr std::uint64_t quiescent = 0;
  static constexpr std::size_t reclaim_threshold = 64;
  static constexpr std::size_t backlog_limit = 4096;

  struct retired {
    void* p;
    deleter_fn deleter;
    std::uint64_t epoch;
  };
  using retired_list = std::vector<retired>;

  struct orphan_batch {
    retired_list items;
    orphan_batch* next = nullptr;
  };

  struct alignas(64) thread_record {
    std::atomic<std::uint64_t> epoch{quiescent};  // the epoch announced, or quiescent
    std::atomic<bool> in_use{true};
    thread_record* next = nullptr;  // immutable once published
    // Owner-thread only:
    unsigned nesting = 0;
    retired_list retired;
    std::uint64_t collected_in = quiescent;  // the global epoch of the last pass over `retired`
  };

  enum class state : unsigned char { none, active, exited };
  static inline constinit thread_local thread_record* thread_rec = nullptr;
  static inline constinit thread_local state thread_state = state::none;

  struct thread_exit {
    thread_exit() = default;
    thread_exit(const thread_exit&) = delete;
    thread_exit& operator=(const thread_exit&) = delete;
    ~thread_exit() {
      epoch_domain& d = instance();
      thread_record* r = thread_rec;
      d.collect(*r);
      if (!r->retired.empty()) d.push_orphans(std::exchange(r->retired, retired_list{}));
      // Later teardown code of this thread takes a fresh record (never given back) and
      // retires straight to the orphans.
      thread_state = state::exited;
      thread_rec = nullptr;
      r->nesting = 0;
      r->epoch.store(quiescent, std::memory_order_release);
      r->in_use.store(false, std::memory_order_release);
    }
  };

  constexpr epoch_domain() noexcept = default;
  static epoch_domain default_domain;

  thread_record& record() noexcept {
    if (thread_record* r = thread_rec) [[likely]]
      return *r;
    return acquire_record();
  }

  [[gnu::noinline]] thread_record& acquire_record() noexcept {
    thread_record* r = nullptr;
    for (thread_record* it = records_.load(std::memory_order_acquire); it; it = it->next) {
      bool free = false;
      if (!it->in_use.load(std::memory_order_relaxed) &&
          it->in_use.compare_exchange_strong(free, true, std::memory_order_acq_rel)) {
        r = it;
        break;
      }
    }
    if (!r) {
      r = new thread_record;  // records are never freed: the domain is immortal
      thread_record* head = records_.load(std::memory_order_relaxed);
      do {
        r->next = head;
      } while (
          !records_.compare_exchange_weak(head, r, std::memory_order_release, std::memory_order_relaxed));
    }
    thread_rec = r;
    if (thread_state == state::none) {
      thread_state = state::active;
      static thread_local thread_exit on_exit;
      static_cast<void>(on_exit);
    }
    return *r;
  }

  // Advances the global epoch if every active reader has announced the current one.
  bool try_advance() noexcept {
    std::uint64_t e = global_epoch_.load(std::memory_order_seq_cst);
    for (thread_record* r = records_.load(std::memory_order_acquire); r; r = r->next) {
      const std::uint64_t announced = r->epoch.load(std::memory_order_seq_cst);
      if (announced != quiescent && announced != e) return false;
    }
    global_epoch_.compare_exchange_strong(e, e + 1, std::memory_order_seq_cst);  // lost: another advanced it
    return true;
  }

  // Deletes what this thread retired that is two epochs old, and the same of the orphans.
  void collect(thread_record& r) noexcept {
    try_advance();
    const std::uint64_t now = global_epoch_.load(std::memory_order_seq_cst);
    // What may be freed depends on the epoch alone: if it has not moved since the last pass,
    // nothing new can go. While a reader holds the epoch back, every retire past the
    // threshold lands here, and rescanning the growing list each time would be quadratic.
    // (Orphans pushed meanwhile wait for the next move.)
    if (now == r.collected_in) return;
    r.collected_in = now;
#if defined(UNIWS_TEST_COUNTERS)
    epoch_stats::collections.fetch_add(1, std::memory_order_relaxed);
#endif
    reclaim(r.retired, now);
    if (orphan_batch* batch = orphans_.exchange(nullptr, std::memory_order_acq_rel)) {
      while (batch) {
        reclaim(batch->items, now);
        orphan_batch* next = batch->next;
        if (batch->items.empty()) {
          delete batch;
        } else {
          push_orphan_batch(batch);
        }
        batch = next;
      }
    }
  }

  static void reclaim(retired_list& list, std::uint64_t now) noexcept {
    std::size_t kept = 0;
    for (std::size_t i = 0; i < list.size(); ++i) {
      if (list[i].epoch + 2 <= now) {
        list[i].deleter(list[i].p);
#if defined(UNIWS_TEST_COUNTERS)
        epoch_stats::pending.fetch_sub(1, std::memory_order_relaxed);
#endif
      } else {
        list[kept++] = list[i];
      }
    }
    list.resize(kept);
  }

  void push_orphans(retired_list items) noexcept {
    push_orphan_batch(new orphan_batch{std::move(items), nullptr});
  }

  void push_orphan_batch(orphan_batch* batch) noexcept {
    orphan_batch* head = orphans_.load(std::memory_order_relaxed);
    do {
      batch->next = head;
    } while (
        !orphans_.compare_exchange_weak(head, batch, std::memory_order_release, std::memory_order_relaxed));
  }

  std::atomic<std::uint64_t> global_epoch_{1};
  std::atomic<thread_record*> records_{nullptr};
  std::atomic<orphan_batch*> orphans_{nullptr};
};

constinit inline epoch_domain epoch_domain::default_domain{};

/// RAII read-side critical section on the process-wide domain.
class epoch_guard {
 public:
  epoch_guard() noexcept : domain_(epoch_domain::instance()) { domain_.lock(); }
  epoch_guard(const epoch_guard&) = delete;
  epoch_guard& operator=(const epoch_guard&) = delete;
  ~epoch_guard() { domain_.unlock(); }

 private:
  epoch_domain& domain_;
};

}  // namespace uniws::detail
