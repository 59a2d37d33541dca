// uniws/registry.hpp - user_registry<Key, Value>: the lock-free user-scoped singleton store.
//
// An open-addressing table of one 64-bit word per slot, probed linearly. A slot holds its
// entry's node address and the top 16 bits of the key's hash, so a probe passes other keys
// without touching their nodes: a hit reads one slot and one node. Nodes never move (handles
// point at them); the table is small enough to stay in cache.
//
// A slot only goes forward: empty -> entry -> tombstone, and any of those -> frozen. An
// insert claims the first empty slot of the key's probe sequence with one CAS, so threads
// creating the same key meet on the same slot and all but one lose: exactly once. A removed
// entry's slot becomes a tombstone, never reused, so a probe never stops short of a live
// entry; tombstones go at the next migration.
//
// Growth (and purging tombstones) migrates to a new table in chunks that inserting threads
// share: each slot is frozen, then its entry copied. Lookups never wait: a frozen entry still
// reads as usual, and a frozen empty slot sends the probe on to the new table. Inserts wait
// for a migration in flight to end, so nothing is inserted into a table whose predecessor is
// still being copied. Replaced tables and removed nodes are reclaimed through
// detail::epoch_domain.
//
// Each entry carries one control word: a state (constructing, ready, failed, removed), a
// count of references (the table's own, plus one per handle) and a version bumped on every
// handle release. Removal is one CAS from (ready, references == 1, version v) to removed:
// it fails if any handle was taken or given back since the predicate was checked, so an
// entry is never removed from under a thread that just got it.
#pragma once

#include <uniws/detail/epoch.hpp>
#include <uniws/detail/hash.hpp>

#include <algorithm>
#include <atomic>
#include <bit>
#include <cassert>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <memory>
#include <new>
#include <thread>
#include <type_traits>
#include <utility>

#if defined(__linux__)
#include <sys/mman.h>
#endif

namespace uniws {

namespace detail {
#if defined(UNIWS_TEST_COUNTERS)
struct registry_stats {
  static inline std::atomic<long> live_nodes{0};  ///< entries allocated and not yet freed
};
#endif

/// A table's slots. Large ones go on transparent huge pages where the kernel offers them on
/// request: a lookup is a random access into the table, and on a virtual machine a TLB miss
/// costs as much as the cache miss (benchmarks/RESULTS.md, uniws_bench_registry).
inline std::atomic<std::uint64_t>* allocate_slots(std::size_t count) {
#if defined(__linux__) && !defined(UNIWS_NO_HUGE_PAGES)
  constexpr std::size_t huge_page = std::size_t{2} << 20;
  const std::size_t bytes = count * sizeof(std::atomic<std::uint64_t>);
  if (bytes >= huge_page) {
    void* p = std::aligned_alloc(huge_page, bytes);  // bytes is a power of two >= the alignment
    if (!p) throw std::bad_alloc();
    static_cast<void>(::madvise(p, bytes, MADV_HUGEPAGE));  // advice: refused is fine
    auto* slots = static_cast<std::atomic<std::uint64_t>*>(p);
    for (std::size_t i = 0; i < count; ++i)
      ::new (static_cast<void*>(slots + i)) std::atomic<std::uint64_t>(0);
    return slots;
  }
#endif
  return new std::atomic<std::uint64_t>[count]();
}

inline void free_slots(std::atomic<std::uint64_t>* slots, std::size_t count) noexcept {
#if defined(__linux__) && !defined(UNIWS_NO_HUGE_PAGES)
  if (count * sizeof(std::atomic<std::uint64_t>) >= (std::size_t{2} << 20)) {
    std::free(slots);  // std::atomic<uint64_t> is trivially destructible
    return;
  }
#else
  static_cast<void>(count);
#endif
  delete[] slots;
}

/// Waiting for another thread's short step: spin a little, then give up the core.
inline void backoff(unsigned spins) noexcept {
  if (spins >= 64) {
    std::this_thread::yield();
    return;
  }
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}
}  // namespace detail

/// A concurrent map from a user to a value (the user's manager) that lives while referenced:
/// get_or_create makes it once, handles count references, the last handle unregisters it.
/// Lookups take no lock (see the control word below).
template <class Key, class Value, class Hash = detail::registry_hash<Key>, class KeyEqual = std::equal_to<>>
class user_registry {
  struct node;
  struct table;

  /// K may look up a Key: K is Key, or the hash is transparent and both functors take K.
  template <class K>
  static constexpr bool lookup_with =
      (std::is_same_v<K, Key> || (requires { typename Hash::is_transparent; })) &&
      std::is_invocable_r_v<std::uint64_t, const Hash&, const K&> &&
      std::is_invocable_r_v<bool, const KeyEqual&, const Key&, const K&>;

 public:
  /// The user id.
  using key_type = Key;
  /// The value kept per user.
  using mapped_type = Value;
  /// Hashes a key (must not throw).
  using hasher = Hash;
  /// Compares keys.
  using key_equal = KeyEqual;
  static_assert(
      std::is_nothrow_invocable_r_v<std::uint64_t, const Hash&, const Key&>,
      "user_registry hashes keys again while migrating, where it cannot fail: the hash must be noexcept");

  /// A counted reference to a registry value. While any handle to an entry is alive the
  /// entry cannot be removed, and the value outlives the registry if need be.
  class handle {
   public:
    handle() noexcept = default;
    /// One more reference.
    handle(const handle& other) noexcept : node_(other.node_) {
      if (node_) add_ref(node_);
    }
    /// Takes the reference over.
    handle(handle&& other) noexcept : node_(std::exchange(other.node_, nullptr)) {}
    /// Drops its own reference, then holds `other`'s.
    handle& operator=(handle other) noexcept {
      std::swap(node_, other.node_);
      return *this;
    }
    ~handle() {
      if (node_) release(node_);
    }

    /// The value; the handle must not be empty.
    [[nodiscard]] Value& operator*() const noexcept { return node_->value; }
    /// The value; the handle must not be empty.
    [[nodiscard]] Value* operator->() const noexcept { return std::addressof(node_->value); }
    /// The value, or null for an empty handle.
    [[nodiscard]] Value* get() const noexcept { return node_ ? std::addressof(node_->value) : nullptr; }
    /// The key it was registered under.
    [[nodiscard]] const Key& key() const noexcept { return node_->key; }
    /// Whether it refers to a value.
    explicit operator bool() const noexcept { return node_ != nullptr; }
    /// Whether both refer to the same entry.
    friend bool operator==(const handle& a, const handle& b) noexcept { return a.node_ == b.node_; }

   private:
    friend class user_registry;
    explicit handle(node* n) noexcept : node_(n) {}  // adopts a reference already taken
    node* node_ = nullptr;
  };

  user_registry() : current_(new table(initial_capacity)) {}
  user_registry(const user_registry&) = delete;
  user_registry& operator=(const user_registry&) = delete;

  /// Destroys every entry no handle refers to; values still referenced die with their last
  /// handle. No other thread may use the registry meanwhile.
  ~user_registry() {
    // Every migration is driven to its end by the insert that started it, so with no other
    // thread about there is one table. Its unfrozen entries hold the table's references.
    table* t = current_.load(std::memory_order_acquire);
    while (t) {
      for (std::size_t i = 0; i <= t->mask; ++i) {
        const std::uint64_t v = t->slots[i].load(std::memory_order_acquire);
        if (!holds_node(v) || is_frozen(v)) continue;
        node* entry = node_of(v);
        std::uint64_t c = entry->control.load(std::memory_order_acquire);
        while (state_of(c) == ready &&
               !entry->control.compare_exchange_weak(c, c + (removed - ready), std::memory_order_acq_rel)) {
        }
        release(entry);
      }
      table* next = t->next.load(std::memory_order_acquire);
      delete t;
      t = next;
    }
  }

  /// The value for `key`, constructed with `make()` exactly once per entry lifetime, however
  /// many threads ask at once. A hit takes no lock. If `make` throws, the exception reaches
  /// this caller and the entry is not created (a concurrent caller for the same key retries).
  template <class K, class Make>
    requires lookup_with<K> && std::constructible_from<Key, const K&> && std::invocable<Make&> &&
             (std::same_as<std::invoke_result_t<Make&>, Value> ||  // built in place, may be immovable
              std::constructible_from<Value, std::invoke_result_t<Make&>>)
  [[nodiscard]] handle get_or_create(const K& key, Make make) {
    const std::uint64_t h = hash_(key);
    std::unique_ptr<node, unbuilt_deleter> fresh;  // allocated on the first miss, reused across retries
    for (;;) {
      located found;
      {
        detail::epoch_guard guard;
        found = locate(h, key, fresh.get(), take::any);
        if (!found.n) {  // a miss: search again, now ready to insert
          fresh.reset(make_node(key));
          found = locate(h, key, fresh.get(), take::any);
        }
      }
      if (found.inserted) return build(fresh.release(), make);  // outside the guard: make() may take its time
      if (wait_until_built(found.n)) return handle(found.n);
      release(found.n);
    }
  }

  /// The value for `key` if an entry is ready, else an empty handle. Never waits.
  template <class K>
    requires lookup_with<K>
  [[nodiscard]] handle find(const K& key) {
    const std::uint64_t h = hash_(key);
    detail::epoch_guard guard;
    return handle(locate(h, key, nullptr, take::ready).n);
  }

  /// Removes the entry for `key` if it is ready, no handle to it is alive, and `pred(value)`
  /// holds. `pred` may run while another thread takes a handle (it must use only the value's
  /// thread-safe interface); the removal then does not happen.
  template <class K, class Pred>
    requires lookup_with<K> && std::predicate<Pred&, Value&>
  bool erase_if(const K& key, Pred pred) {
    const std::uint64_t h = hash_(key);
    node* n = nullptr;
    {
      detail::epoch_guard guard;
      n = locate(h, key, nullptr, take::none).n;  // the guard keeps it readable
      if (!n || !try_remove(n, pred)) return false;
    }
    // Retired outside the guard: a thread in no critical section is the one retire() can make
    // wait for a reader that holds reclamation back.
    detail::epoch_domain::instance().retire(n, &release_deferred);
    return true;
  }

  /// erase_if for every entry; returns how many were removed.
  template <class Pred>
    requires std::predicate<Pred&, Value&>
  std::size_t sweep(Pred pred) {
    std::size_t removed_count = 0;
    detail::epoch_guard guard;
    for_each_node([&](node* n) {
      if (!try_remove(n, pred)) return;
      ++removed_count;
      detail::epoch_domain::instance().retire(n, &release_deferred);
    });
    return removed_count;
  }

  /// Calls fn(key, value) for every ready entry. Safe while others insert and erase (an
  /// entry inserted or erased meanwhile may or may not be visited; none twice). Reclamation
  /// waits while it runs, so keep fn short.
  template <class Fn>
    requires std::invocable<Fn&, const Key&, Value&>
  void for_each(Fn fn) {
    detail::epoch_guard guard;
    for_each_node([&](node* n) {
      if (state_of(n->control.load(std::memory_order_acquire)) == ready) fn(std::as_const(n->key), n->value);
    });
  }

  /// Entries created and not removed (including any being constructed).
  [[nodiscard]] std::size_t size() const noexcept { return size_.load(std::memory_order_relaxed); }
  /// Slots in the current table (the load factor stays at or below 3/4).
  [[nodiscard]] std::size_t bucket_count() const noexcept {
    detail::epoch_guard guard;
    return current_.load(std::memory_order_acquire)->mask + 1;
  }

 private:
  /// ---- control word: [ version:30 | references:32 | state:2 ] ----
  static constexpr std::uint64_t constructing = 0, ready = 1, failed = 2, removed = 3;
  static constexpr std::uint64_t state_mask = 3;
  static constexpr std::uint64_t ref_unit = std::uint64_t{1} << 2;
  static constexpr std::uint64_t refs_mask = ((std::uint64_t{1} << 32) - 1) << 2;
  static constexpr std::uint64_t version_unit = std::uint64_t{1} << 34;

  static constexpr std::uint64_t state_of(std::uint64_t c) noexcept { return c & state_mask; }
  static constexpr std::uint64_t refs_of(std::uint64_t c) noexcept { return (c & refs_mask) >> 2; }

  struct node {
    template <class K>
    explicit node(const K& k) : key(k) {
#if defined(UNIWS_TEST_COUNTERS)
      detail::registry_stats::live_nodes.fetch_add(1, std::memory_order_relaxed);
#endif
    }
    ~node() {
#if defined(UNIWS_TEST_COUNTERS)
      detail::registry_stats::live_nodes.fetch_sub(1, std::memory_order_relaxed);
#endif
    }
    node(const node&) = delete;
    node& operator=(const node&) = delete;

    /// The table's reference and the creator's.
    std::atomic<std::uint64_t> control{constructing | 2 * ref_unit};
    /// No copy of the hash: the slot's tag filters lookups, and migration and removal hash the
    /// key again. Nodes stay small (a std::string key's node fits 64 bytes).
    const Key key;
    union {
      Value value;  ///< alive from state ready until the last reference goes
    };
  };

  /// A node that lost its insertion race: its value was never built.
  struct unbuilt_deleter {
    void operator()(node* n) const noexcept { delete n; }
  };

  /// ---- slots: [ hash tag:16 | node address:45 | 0 | tombstone | frozen ] ----
  static constexpr std::uint64_t empty_slot = 0;
  static constexpr std::uint64_t frozen_bit = 1;
  static constexpr std::uint64_t tombstone = 2;
  static constexpr std::uint64_t frozen_empty = frozen_bit;
  static constexpr std::uint64_t tag_mask = ~std::uint64_t{0} << 48;
  static constexpr std::uint64_t address_mask = ~tag_mask & ~std::uint64_t{7};
  static_assert(alignof(node) >= 8, "the low three bits of a node address carry slot state");

  static bool is_frozen(std::uint64_t v) noexcept { return (v & frozen_bit) != 0; }
  static bool holds_node(std::uint64_t v) noexcept { return (v & address_mask) != 0; }
  static node* node_of(std::uint64_t v) noexcept {
    return reinterpret_cast<node*>(static_cast<std::uintptr_t>(v & address_mask));
  }
  static std::uint64_t encode(const node* n, std::uint64_t h) noexcept {
    return static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(n)) | (h & tag_mask);
  }

  template <class K>
  static node* make_node(const K& key) {
    auto* n = new node(key);
    // User-space addresses fit in 48 bits on every 64-bit platform we know of; refuse rather
    // than corrupt if one does not.
    if ((static_cast<std::uint64_t>(reinterpret_cast<std::uintptr_t>(n)) & ~address_mask) != 0) {
      delete n;
      throw std::bad_alloc();
    }
    return n;
  }

  struct table {
    explicit table(std::size_t capacity) : mask(capacity - 1), slots(detail::allocate_slots(capacity)) {}
    ~table() { detail::free_slots(slots, mask + 1); }
    table(const table&) = delete;
    table& operator=(const table&) = delete;

    /// Read by every lookup.
    const std::size_t mask;
    std::atomic<std::uint64_t>* const slots;
    std::atomic<table*> next{nullptr};  ///< set when a migration out of this table starts
    /// Written by inserts and migrations: kept off the lookups' cache line.
    alignas(64) std::atomic<std::size_t> used{0};  ///< slots ever claimed: entries and tombstones
    alignas(64) std::atomic<std::size_t> migrate_claimed{0};
    std::atomic<std::size_t> migrate_done{0};
  };

  static void delete_table(void* p) noexcept { delete static_cast<table*>(p); }

  static constexpr std::size_t initial_capacity = 16;
  static constexpr std::size_t migrate_chunk = 256;
  static std::size_t threshold(const table* t) noexcept { return (t->mask + 1) - (t->mask + 1) / 4; }

  /// ---- references ----
  /// One read-modify-write, given back if the state is wrong: a cold node's line is fetched
  /// once, for writing. Safe on a failed or removed node too: the caller's epoch guard holds
  /// back the table's own reference, so the count cannot reach zero meanwhile.
  /// ready_only: a ready entry; otherwise one being built too.
  static bool try_acquire(node* n, bool ready_only) noexcept {
    const std::uint64_t s = state_of(n->control.fetch_add(ref_unit, std::memory_order_acquire));
    if (ready_only ? s == ready : s < failed) return true;
    n->control.fetch_sub(ref_unit, std::memory_order_relaxed);
    return false;
  }

  static void add_ref(node* n) noexcept { n->control.fetch_add(ref_unit, std::memory_order_relaxed); }

  static void release(node* n) noexcept {
    const std::uint64_t before = n->control.fetch_add(version_unit - ref_unit, std::memory_order_acq_rel);
    if (refs_of(before) != 1) return;
    if (state_of(before) == removed) n->value.~Value();
    delete n;
  }

  static void release_deferred(void* p) noexcept { release(static_cast<node*>(p)); }

  /// ---- lookup and insertion (caller holds an epoch guard) ----
  struct located {
    node* n = nullptr;  ///< a reference taken on it, unless it is the inserted node
    bool inserted = false;
  };

  enum class take { any, ready, none };  ///< which entry to take a reference on: built or not, ready, none

  /// Finds key's entry and takes a reference on it as `mode` says. Without one, links `fresh`
  /// in if given.
  template <class K>
  located locate(std::uint64_t h, const K& key, node* fresh, take mode) {
    const std::uint64_t tag = h & tag_mask;
    table* t = current_.load(std::memory_order_acquire);
    for (;;) {
      const std::size_t mask = t->mask;
      std::atomic<std::uint64_t>* const slots = t->slots;
      std::size_t i = static_cast<std::size_t>(h) & mask;
      std::uint64_t v = slots[i].load(std::memory_order_acquire);
      for (std::size_t left = mask + 1;;) {
        if (v == empty_slot) {
          // Not here, nor in a successor (nothing is inserted there before this table is
          // wholly frozen).
          if (!fresh) return {};
          if (t->next.load(std::memory_order_acquire) != nullptr) break;  // migrating: wait, then retry
          size_.fetch_add(1, std::memory_order_seq_cst);                  // counted before it can be copied
          if (slots[i].compare_exchange_strong(v, encode(fresh, h), std::memory_order_acq_rel,
                                               std::memory_order_acquire)) {
            after_claim(t);
            return {fresh, true};
          }
          size_.fetch_sub(1, std::memory_order_relaxed);
          continue;  // v now holds what took the slot: look at it
        }
        if (v == frozen_empty) break;  // the rest of this probe sequence is in the next table
        if ((v & tag_mask) == tag && holds_node(v)) {
          node* n = node_of(v);
          if (equal_(n->key, key)) {
            if (mode == take::none) {
              if (state_of(n->control.load(std::memory_order_acquire)) == ready) return {n, false};
            } else if (try_acquire(n, mode == take::ready)) {
              return {n, false};
            }
          }
          // Otherwise another key, or this key's entry failing or being removed: a newer one
          // for the same key can only be further on.
        }
        if (--left == 0) break;  // every slot is taken
        i = (i + 1) & mask;
        v = slots[i].load(std::memory_order_acquire);
      }
      // This table cannot settle it: it is being migrated, or it is full.
      if (fresh) {
        finish_migration(t);
        t = current_.load(std::memory_order_acquire);
        continue;
      }
      table* next = t->next.load(std::memory_order_acquire);
      if (!next) return {};
      t = next;
    }
  }

  void after_claim(table* t) {
    if (t->used.fetch_add(1, std::memory_order_seq_cst) + 1 <= threshold(t)) return;
    try {
      start_migration(t);
    } catch (const std::bad_alloc&) {
      return;  // the entry is in; the table fills further and a later insert tries again
    }
    help_migrate(t);
  }

  /// Gives t a successor sized for what it may have to carry, if t is the current table.
  void start_migration(table* t) {
    if (t->next.load(std::memory_order_acquire) || current_.load(std::memory_order_acquire) != t) return;
    const std::size_t capacity = t->mask + 1;
    // Read in this order: every entry claimed before `used` was read is counted in `size_`
    // (each insert counts itself before claiming), and at most capacity - used more can be
    // claimed from now on.
    const std::size_t used = t->used.load(std::memory_order_seq_cst);
    const std::size_t live = size_.load(std::memory_order_seq_cst);
    const std::size_t most = live + (capacity > used ? capacity - used : 0);
    auto successor = std::make_unique<table>(std::max(initial_capacity, std::bit_ceil(most + most / 2 + 1)));
    table* expected = nullptr;
    if (t->next.compare_exchange_strong(expected, successor.get(), std::memory_order_seq_cst))
      static_cast<void>(successor.release());
  }

  /// Migrates chunks of t until none is left to claim; whoever completes the last one makes
  /// the successor current.
  void help_migrate(table* t) {
    if (!t->next.load(std::memory_order_acquire)) return;  // no migration started
    const std::size_t capacity = t->mask + 1;
    for (;;) {
      const std::size_t begin = t->migrate_claimed.fetch_add(migrate_chunk, std::memory_order_relaxed);
      if (begin >= capacity) return;
      const std::size_t end = std::min(capacity, begin + migrate_chunk);
      migrate_range(t, begin, end);
      if (t->migrate_done.fetch_add(end - begin, std::memory_order_acq_rel) + (end - begin) == capacity) {
        current_.store(t->next.load(std::memory_order_acquire), std::memory_order_release);
        detail::epoch_domain::instance().retire(t, &delete_table);
      }
    }
  }

  /// Starts t's migration if t is full, helps it, and waits for its end. Only inserts wait,
  /// and only for another inserter's chunk in flight.
  void finish_migration(table* t) {
    if (current_.load(std::memory_order_acquire) != t) return;
    if (!t->next.load(std::memory_order_acquire)) start_migration(t);  // full: bad_alloc reaches the caller
    help_migrate(t);
    for (unsigned spins = 0; current_.load(std::memory_order_acquire) == t; ++spins) detail::backoff(spins);
  }

  /// Freezes slots [begin, end) of t and copies their entries into t's successor. Nodes and
  /// their destination slots are prefetched a few slots ahead: the copy is a string of
  /// independent cache misses. The successor's `used` is added to once per chunk, not per
  /// entry: every helper would otherwise contend for its line (measured: that one add drew over
  /// half of the migration's profile samples with 8 threads on 2 cores). It is read only once the successor
  /// is current, after every chunk's count is in (the migrate_done fetch_add orders them).
  void migrate_range(table* t, std::size_t begin, std::size_t end) {
    table* const successor = t->next.load(std::memory_order_acquire);
    std::size_t placed = 0;
    constexpr std::size_t node_ahead = 8, slot_ahead = 4;
    hashed ahead[8] = {};  // slot i's node and hash, computed slot_ahead slots earlier
    for (std::size_t i = begin; i < end; ++i) {
      if (i + node_ahead < end) {
        const std::uint64_t w = t->slots[i + node_ahead].load(std::memory_order_relaxed);
        if (holds_node(w)) prefetch(node_of(w));  // a stale address is harmless to prefetch
      }
      if (i + slot_ahead < end) {
        const std::uint64_t w = t->slots[i + slot_ahead].load(std::memory_order_acquire);
        hashed& next = ahead[(i + slot_ahead) % 8];
        next = {};
        if (holds_node(w)) {
          next = {node_of(w), hash_(node_of(w)->key)};
          prefetch(&successor->slots[static_cast<std::size_t>(next.h) & successor->mask]);
        }
      }
      if (migrate_slot(t->slots[i], successor, ahead[i % 8])) ++placed;
    }
    if (placed != 0) successor->used.fetch_add(placed, std::memory_order_relaxed);
  }

  struct hashed {
    const node* n = nullptr;
    std::uint64_t h = 0;
  };

  static void prefetch(const void* p) noexcept {
#if defined(__GNUC__) || defined(__clang__)
    __builtin_prefetch(p);
#else
    static_cast<void>(p);
#endif
  }

  /// Returns whether it claimed a slot of the successor.
  bool migrate_slot(std::atomic<std::uint64_t>& slot, table* successor, hashed hint) {
    std::uint64_t v = slot.load(std::memory_order_relaxed);
    while (!slot.compare_exchange_weak(v, v | frozen_bit, std::memory_order_acq_rel,
                                       std::memory_order_relaxed)) {
    }
    if (!holds_node(v)) return false;
    node* n = node_of(v);
    // A node failed or removed already is left behind: whoever failed or removed it clears its
    // slots, ours included.
    if (state_of(n->control.load(std::memory_order_acquire)) >= failed) return false;
    const std::uint64_t h = hint.n == n ? hint.h : hash_(n->key);
    std::atomic<std::uint64_t>& copy = place(successor, n, h);
    // The copy and this check pair with the failing or removing thread's state change and its
    // scan of the tables (all seq_cst): either it saw the copy and clears it, or we see it here.
    if (state_of(n->control.load(std::memory_order_seq_cst)) < failed) return true;
    // Failed or removed while being copied: clear the copy, and keep the node alive until no
    // reader can have found it there. Our guard predates the node's retirement (we read it
    // from a slot its owner had not yet cleared), so the node is still here to reference.
    add_ref(n);
    std::uint64_t expected = encode(n, h);
    static_cast<void>(copy.compare_exchange_strong(expected, tombstone, std::memory_order_seq_cst));
    detail::epoch_domain::instance().retire(n, &release_deferred);
    return true;  // the copy's slot is a tombstone now: still claimed
  }

  /// Puts n into the first empty slot of its probe sequence in t (t is not yet current, so
  /// nothing else is inserted there and nothing is frozen).
  static std::atomic<std::uint64_t>& place(table* t, node* n, std::uint64_t h) noexcept {
    const std::uint64_t v = encode(n, h);
    [[maybe_unused]] std::size_t probes = 0;
    for (std::size_t i = static_cast<std::size_t>(h) & t->mask;; i = (i + 1) & t->mask) {
      assert(probes++ <= t->mask && "start_migration sized the successor too small");
      std::uint64_t expected = empty_slot;
      if (t->slots[i].load(std::memory_order_relaxed) == empty_slot &&
          t->slots[i].compare_exchange_strong(expected, v, std::memory_order_seq_cst)) {
        return t->slots[i];  // the caller counts it in t->used
      }
    }
  }

  /// ---- construction ----
  template <class Make>
  handle build(node* n, Make& make) {
    try {
      ::new (static_cast<void*>(std::addressof(n->value))) Value(make());
    } catch (...) {
      // Publish the failure (waiters retry), clear the node's slots, and give up the table's
      // reference once no reader can still be looking at it; then the creator's.
      n->control.fetch_add(failed - constructing, std::memory_order_seq_cst);
      size_.fetch_sub(1, std::memory_order_relaxed);
      {
        detail::epoch_guard guard;
        unlink(n);
      }
      detail::epoch_domain::instance().retire(n, &release_deferred);
      release(n);
      throw;
    }
    n->control.fetch_add(ready - constructing, std::memory_order_release);
    return handle(n);
  }

  static bool wait_until_built(node* n) noexcept {
    for (unsigned spins = 0;; ++spins) {
      const std::uint64_t s = state_of(n->control.load(std::memory_order_acquire));
      if (s == ready) return true;
      if (s != constructing) return false;
      detail::backoff(spins);
    }
  }

  /// ---- removal (caller holds an epoch guard, and retires n if this returns true) ----
  template <class Pred>
  bool try_remove(node* n, Pred& pred) {
    std::uint64_t c = n->control.load(std::memory_order_acquire);
    if (state_of(c) != ready || refs_of(c) != 1) return false;
    if (!static_cast<bool>(std::invoke(pred, n->value))) return false;
    // Fails if a handle was taken or given back since c was read (both change the word).
    // seq_cst: pairs with a migration copying n (see migrate_slot).
    if (!n->control.compare_exchange_strong(c, c + (removed - ready), std::memory_order_seq_cst,
                                            std::memory_order_relaxed))
      return false;
    size_.fetch_sub(1, std::memory_order_relaxed);
    unlink(n);
    return true;
  }

  /// Turns every slot that holds n, in the current table and its successors, into a
  /// tombstone. n is failed or removed: a migration copying it concurrently either is seen
  /// here or sees that state and clears its copy itself.
  void unlink(node* n) noexcept {
    // seq_cst throughout: a migration copying n concurrently with its failure must either
    // see the failure or have its copy (and the table holding it) seen here.
    const std::uint64_t h = hash_(n->key);
    for (table* t = current_.load(std::memory_order_seq_cst); t;
         t = t->next.load(std::memory_order_seq_cst)) {
      std::size_t i = static_cast<std::size_t>(h) & t->mask;
      for (std::size_t left = t->mask + 1; left != 0; --left, i = (i + 1) & t->mask) {
        std::uint64_t v = t->slots[i].load(std::memory_order_seq_cst);
        if (v == empty_slot || v == frozen_empty) break;  // n was never placed beyond this
        if (!holds_node(v) || node_of(v) != n) continue;
        // Frozen or not (a migration may freeze it meanwhile): keep the frozen bit.
        while (holds_node(v) && !t->slots[i].compare_exchange_weak(v, (v & frozen_bit) | tombstone,
                                                                   std::memory_order_seq_cst)) {
        }
        break;
      }
    }
  }

  /// Every node of the current table, once any migration in flight has ended (so an entry is
  /// in exactly one place). A migration that starts meanwhile leaves the nodes readable here.
  template <class Fn>
  void for_each_node(Fn&& fn) {
    table* t = current_.load(std::memory_order_acquire);
    while (t->next.load(std::memory_order_acquire)) {
      finish_migration(t);
      t = current_.load(std::memory_order_acquire);
    }
    for (std::size_t i = 0; i <= t->mask; ++i) {
      const std::uint64_t v = t->slots[i].load(std::memory_order_acquire);
      if (holds_node(v)) fn(node_of(v));
    }
  }

  alignas(64) std::atomic<table*> current_;  ///< read by every lookup
  [[no_unique_address]] Hash hash_;
  [[no_unique_address]] KeyEqual equal_;
  alignas(64) std::atomic<std::size_t> size_{0};
};

}  // namespace uniws
