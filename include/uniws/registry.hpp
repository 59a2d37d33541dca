// uniws/registry.hpp - user_registry<Key, Value>: the lock-free user-scoped singleton store.
//
// A split-ordered list (Shalev & Shavit): one lock-free sorted list (Michael's algorithm,
// logical deletion by marking a node's next pointer) holds every entry, ordered by the
// bit-reversed hash; buckets are shortcuts into it, created on first use and doubled in
// number by one CAS when the table grows, so growth never stops the world. Unlinked nodes
// are reclaimed through detail::epoch_domain.
//
// Each entry carries one control word: a state (constructing, ready, failed, removed), a
// count of references (the list's own, plus one per handle) and a version bumped on every
// handle release. Removal is one CAS from (ready, references == 1, version v) to removed:
// it fails if any handle was taken or given back since the predicate was checked, so an
// entry is never removed from under a thread that just got it.
#pragma once

#include <uniws/detail/epoch.hpp>
#include <uniws/detail/hash.hpp>

#include <atomic>
#include <bit>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <new>
#include <thread>
#include <type_traits>
#include <utility>

namespace uniws {

namespace detail {
#if defined(UNIWS_TEST_COUNTERS)
struct registry_stats {
  static inline std::atomic<long> live_nodes{0};  // entries allocated and not yet freed
};
#endif

inline void cpu_relax() noexcept {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}
}  // namespace detail

template <class Key, class Value, class Hash = detail::registry_hash<Key>, class KeyEqual = std::equal_to<>>
class user_registry {
  struct node;

  // K may look up a Key: K is Key, or the hash is transparent and both functors take K.
  template <class K>
  static constexpr bool lookup_with =
      (std::is_same_v<K, Key> || (requires { typename Hash::is_transparent; })) &&
      std::is_invocable_r_v<std::uint64_t, const Hash&, const K&> &&
      std::is_invocable_r_v<bool, const KeyEqual&, const Key&, const K&>;

 public:
  using key_type = Key;
  using mapped_type = Value;
  using hasher = Hash;
  using key_equal = KeyEqual;

  /// A counted reference to a registry value. While any handle to an entry is alive the
  /// entry cannot be removed, and the value outlives the registry if need be.
  class handle {
   public:
    handle() noexcept = default;
    handle(const handle& other) noexcept : node_(other.node_) {
      if (node_) add_ref(node_);
    }
    handle(handle&& other) noexcept : node_(std::exchange(other.node_, nullptr)) {}
    handle& operator=(handle other) noexcept {
      std::swap(node_, other.node_);
      return *this;
    }
    ~handle() {
      if (node_) release(node_);
    }

    [[nodiscard]] Value& operator*() const noexcept { return node_->value; }
    [[nodiscard]] Value* operator->() const noexcept { return std::addressof(node_->value); }
    [[nodiscard]] Value* get() const noexcept { return node_ ? std::addressof(node_->value) : nullptr; }
    [[nodiscard]] const Key& key() const noexcept { return node_->key; }
    explicit operator bool() const noexcept { return node_ != nullptr; }
    friend bool operator==(const handle& a, const handle& b) noexcept { return a.node_ == b.node_; }

   private:
    friend class user_registry;
    explicit handle(node* n) noexcept : node_(n) {}  // adopts a reference already taken
    node* node_ = nullptr;
  };

  user_registry() {
    bucket& head = bucket_at(0);  // bucket 0 heads the whole list
    head.order = 0;
    head.state.store(bucket::linked, std::memory_order_relaxed);
  }
  user_registry(const user_registry&) = delete;
  user_registry& operator=(const user_registry&) = delete;

  /// Destroys every entry no handle refers to; values still referenced die with their last
  /// handle. No other thread may use the registry meanwhile.
  ~user_registry() {
    std::uintptr_t raw = bucket_at(0).next.load(std::memory_order_acquire);
    while (node_base* n = pointer(raw)) {
      raw = n->next.load(std::memory_order_acquire);
      if (!is_regular(n)) continue;  // a bucket: freed with its segment
      auto* entry = static_cast<node*>(n);
      // Still linked, so the list's reference is ours to drop (an unlinked node's was handed
      // to the epoch domain by whoever unlinked it).
      std::uint64_t c = entry->control.load(std::memory_order_acquire);
      while (state_of(c) == ready &&
             !entry->control.compare_exchange_weak(c, c + (removed - ready), std::memory_order_acq_rel)) {
      }
      release(entry);
    }
    for (auto& segment : segments_) delete[] segment.load(std::memory_order_acquire);
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
    const std::uint64_t order = regular_order(h);
    std::unique_ptr<node, unbuilt_deleter> fresh;  // allocated on the first miss, reused across retries
    for (;;) {
      node* n = nullptr;
      bool inserted = false;
      {
        detail::epoch_guard guard;
        const position pos = search(bucket_head(h), order, &key);
        if (pos.found) {
          n = static_cast<node*>(pos.curr);
          if (!try_acquire(n)) {  // failed or removed: help unlink it, then look again
            mark(n);
            continue;
          }
        } else {
          if (!fresh) fresh.reset(new node(order, key));
          std::uintptr_t expected = address(pos.curr);
          fresh->next.store(expected, std::memory_order_relaxed);
          if (!pos.prev->compare_exchange_strong(expected, address(fresh.get()), std::memory_order_release,
                                                 std::memory_order_relaxed))
            continue;
          n = fresh.release();
          inserted = true;
          grow_if_needed(size_.fetch_add(1, std::memory_order_relaxed) + 1);
        }
      }
      if (inserted) return build(n, make);  // outside the guard: make() may take its time
      if (wait_until_built(n)) return handle(n);
      release(n);
    }
  }

  /// The value for `key` if an entry is ready, else an empty handle. Never waits.
  template <class K>
    requires lookup_with<K>
  [[nodiscard]] handle find(const K& key) {
    const std::uint64_t h = hash_(key);
    detail::epoch_guard guard;
    const position pos = search(bucket_head(h), regular_order(h), &key);
    if (pos.found) {
      auto* n = static_cast<node*>(pos.curr);
      if (try_acquire_ready(n)) return handle(n);
    }
    return handle();
  }

  /// Removes the entry for `key` if it is ready, no handle to it is alive, and `pred(value)`
  /// holds. `pred` may run while another thread takes a handle (it must use only the value's
  /// thread-safe interface); the removal then does not happen.
  template <class K, class Pred>
    requires lookup_with<K> && std::predicate<Pred&, Value&>
  bool erase_if(const K& key, Pred pred) {
    const std::uint64_t h = hash_(key);
    detail::epoch_guard guard;
    const position pos = search(bucket_head(h), regular_order(h), &key);
    return pos.found && try_remove(static_cast<node*>(pos.curr), pred);
  }

  /// erase_if for every entry; returns how many were removed.
  template <class Pred>
    requires std::predicate<Pred&, Value&>
  std::size_t sweep(Pred pred) {
    std::size_t removed_count = 0;
    detail::epoch_guard guard;
    for_each_node([&](node* n) {
      if (try_remove(n, pred)) ++removed_count;
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
  [[nodiscard]] std::size_t bucket_count() const noexcept { return bucket_count_.load(std::memory_order_relaxed); }

 private:
  // ---- control word: [ version:30 | references:32 | state:2 ] ----
  static constexpr std::uint64_t constructing = 0, ready = 1, failed = 2, removed = 3;
  static constexpr std::uint64_t state_mask = 3;
  static constexpr std::uint64_t ref_unit = std::uint64_t{1} << 2;
  static constexpr std::uint64_t refs_mask = ((std::uint64_t{1} << 32) - 1) << 2;
  static constexpr std::uint64_t version_unit = std::uint64_t{1} << 34;

  static constexpr std::uint64_t state_of(std::uint64_t c) noexcept { return c & state_mask; }
  static constexpr std::uint64_t refs_of(std::uint64_t c) noexcept { return (c & refs_mask) >> 2; }

  struct node_base {
    std::atomic<std::uintptr_t> next{0};  // low bit set: this node is logically deleted
    std::uint64_t order = 0;  // bit-reversed hash; odd for entries, even for buckets. Written
                              // before the node is published, never after.
  };

  // A bucket is its own dummy node, stored inline in the bucket array: finding a bucket's
  // place in the list costs no extra pointer hop.
  struct bucket : node_base {
    static constexpr std::uint8_t absent = 0, inserting = 1, linked = 2;
    std::atomic<std::uint8_t> state{absent};
  };

  struct node : node_base {
    template <class K>
    node(std::uint64_t o, const K& k) : key(k) {
      this->order = o;
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
    // A cache line each: the hit path touches next, order, control and the key together.
    static void* operator new(std::size_t n) { return ::operator new(n, std::align_val_t{64}); }
    static void operator delete(void* p) noexcept { ::operator delete(p, std::align_val_t{64}); }

    // The list's reference and the creator's.
    std::atomic<std::uint64_t> control{constructing | 2 * ref_unit};
    const Key key;
    union {
      Value value;  // alive from state ready until the last reference goes
    };
  };

  // A node that lost its insertion race: its value was never built.
  struct unbuilt_deleter {
    void operator()(node* n) const noexcept { delete n; }
  };

  struct position {
    std::atomic<std::uintptr_t>* prev;
    node_base* curr;
    bool found;
  };

  static node_base* pointer(std::uintptr_t raw) noexcept { return reinterpret_cast<node_base*>(raw & ~std::uintptr_t{1}); }
  static std::uintptr_t address(const node_base* n) noexcept { return reinterpret_cast<std::uintptr_t>(n); }
  static bool is_marked(std::uintptr_t raw) noexcept { return (raw & 1) != 0; }
  static bool is_regular(const node_base* n) noexcept { return (n->order & 1) != 0; }
  static std::uint64_t regular_order(std::uint64_t h) noexcept { return detail::reverse_bits(h) | 1; }
  static std::uint64_t bucket_order(std::size_t b) noexcept { return detail::reverse_bits(b); }

  // ---- references ----
  static bool try_acquire(node* n) noexcept {
    std::uint64_t c = n->control.load(std::memory_order_relaxed);
    do {
      if (state_of(c) >= failed) return false;
    } while (!n->control.compare_exchange_weak(c, c + ref_unit, std::memory_order_acquire, std::memory_order_relaxed));
    return true;
  }

  static bool try_acquire_ready(node* n) noexcept {
    std::uint64_t c = n->control.load(std::memory_order_relaxed);
    do {
      if (state_of(c) != ready) return false;
    } while (!n->control.compare_exchange_weak(c, c + ref_unit, std::memory_order_acquire, std::memory_order_relaxed));
    return true;
  }

  static void add_ref(node* n) noexcept { n->control.fetch_add(ref_unit, std::memory_order_relaxed); }

  static void release(node* n) noexcept {
    const std::uint64_t before = n->control.fetch_add(version_unit - ref_unit, std::memory_order_acq_rel);
    if (refs_of(before) != 1) return;
    if (state_of(before) == removed) n->value.~Value();
    delete n;
  }

  static void release_list_reference(void* p) noexcept { release(static_cast<node*>(p)); }

  // ---- construction ----
  template <class Make>
  handle build(node* n, Make& make) {
    try {
      ::new (static_cast<void*>(std::addressof(n->value))) Value(make());
    } catch (...) {
      // Publish the failure (waiters retry), unlink the node, drop the creator's reference.
      n->control.fetch_add(failed - constructing, std::memory_order_acq_rel);
      size_.fetch_sub(1, std::memory_order_relaxed);
      unlink(n);
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
      if (spins < 64) {
        detail::cpu_relax();
      } else {
        std::this_thread::yield();
      }
    }
  }

  // ---- removal ----
  template <class Pred>
  bool try_remove(node* n, Pred& pred) {
    std::uint64_t c = n->control.load(std::memory_order_acquire);
    if (state_of(c) != ready || refs_of(c) != 1) return false;
    if (!static_cast<bool>(std::invoke(pred, n->value))) return false;
    // Fails if a handle was taken or given back since c was read (both change the word).
    if (!n->control.compare_exchange_strong(c, c + (removed - ready), std::memory_order_acq_rel,
                                            std::memory_order_relaxed))
      return false;
    size_.fetch_sub(1, std::memory_order_relaxed);
    unlink(n);
    return true;
  }

  // Marks n deleted (any thread may; the state already says it is gone).
  static void mark(node* n) noexcept {
    std::uintptr_t raw = n->next.load(std::memory_order_relaxed);
    while (!is_marked(raw) && !n->next.compare_exchange_weak(raw, raw | 1, std::memory_order_release,
                                                               std::memory_order_relaxed)) {
    }
  }

  // Marks n and searches for it, which unlinks every marked node on the way.
  void unlink(node* n) {
    detail::epoch_guard guard;
    mark(n);
    const std::uint64_t h = detail::reverse_bits(n->order);  // recovers the hash's bucket bits
    static_cast<void>(search(bucket_head(h), n->order, std::addressof(n->key)));
  }

  // ---- the list (caller holds an epoch guard) ----
  template <class K>
  position search(node_base* head, std::uint64_t order, const K* key) {
  retry:
    std::atomic<std::uintptr_t>* prev = &head->next;
    std::uintptr_t curr_raw = prev->load(std::memory_order_acquire);
    for (;;) {
      node_base* curr = pointer(curr_raw);
      if (!curr) return {prev, nullptr, false};
      const std::uintptr_t next_raw = curr->next.load(std::memory_order_acquire);
      if (is_marked(next_raw)) {
        std::uintptr_t expected = curr_raw;
        if (!prev->compare_exchange_strong(expected, next_raw & ~std::uintptr_t{1}, std::memory_order_acq_rel,
                                           std::memory_order_relaxed))
          goto retry;
        // This thread unlinked it, so it alone hands the list's reference to reclamation.
        detail::epoch_domain::instance().retire(static_cast<node*>(curr), &release_list_reference);
        curr_raw = next_raw & ~std::uintptr_t{1};
        continue;
      }
      if (curr->order >= order) {
        if (curr->order > order) return {prev, curr, false};
        if (!key || equal_(static_cast<node*>(curr)->key, *key)) return {prev, curr, true};
      }
      prev = &curr->next;
      curr_raw = next_raw;
    }
  }

  template <class Fn>
  void for_each_node(Fn&& fn) {
    std::uintptr_t raw = bucket_at(0).next.load(std::memory_order_acquire);
    while (node_base* n = pointer(raw)) {
      raw = n->next.load(std::memory_order_acquire);
      if (is_regular(n) && !is_marked(raw)) fn(static_cast<node*>(n));
    }
  }

  // ---- buckets ----
  static constexpr std::size_t segment_count = 48;  // up to 2^47 buckets
  static constexpr std::size_t initial_buckets = 16;

  // Segment k holds buckets [2^(k-1), 2^k) (segment 0 holds bucket 0), allocated on first
  // use and never moved, so doubling the bucket count copies nothing.
  bucket& bucket_at(std::size_t b) {
    const auto segment = static_cast<std::size_t>(std::bit_width(b));
    const std::size_t first = segment == 0 ? 0 : std::size_t{1} << (segment - 1);
    bucket* buckets = segments_[segment].load(std::memory_order_acquire);
    if (!buckets) [[unlikely]]
      buckets = allocate_segment(segment);
    return buckets[b - first];
  }

  bucket* allocate_segment(std::size_t segment) {
    const std::size_t size = segment == 0 ? 1 : std::size_t{1} << (segment - 1);
    auto* fresh = new bucket[size];
    bucket* expected = nullptr;
    if (segments_[segment].compare_exchange_strong(expected, fresh, std::memory_order_acq_rel)) return fresh;
    delete[] fresh;
    return expected;
  }

  node_base* bucket_head(std::uint64_t h) {
    const std::size_t b = static_cast<std::size_t>(h) & (bucket_count_.load(std::memory_order_acquire) - 1);
    bucket& bk = bucket_at(b);
    if (bk.state.load(std::memory_order_acquire) == bucket::linked) [[likely]]
      return &bk;
    return link_bucket(b);
  }

  // Links bucket b into the list after its parent (b with its top bit cleared), linking the
  // parent first if need be. Returns b, or, while another thread is linking b, the nearest
  // linked ancestor: searching from any earlier node of the sorted list is correct, so no
  // thread ever waits for another.
  node_base* link_bucket(std::size_t b) {
    bucket& bk = bucket_at(b);
    const std::size_t parent = b & ~std::bit_floor(b);
    bucket& parent_bucket = bucket_at(parent);
    node_base* parent_head = parent_bucket.state.load(std::memory_order_acquire) == bucket::linked
                                 ? &parent_bucket
                                 : link_bucket(parent);
    std::uint8_t expected = bucket::absent;
    if (!bk.state.compare_exchange_strong(expected, bucket::inserting, std::memory_order_acq_rel)) {
      return expected == bucket::linked ? &bk : parent_head;
    }
    bk.order = bucket_order(b);
    for (;;) {
      const position pos = search<Key>(parent_head, bk.order, nullptr);
      std::uintptr_t next = address(pos.curr);
      bk.next.store(next, std::memory_order_relaxed);
      if (pos.prev->compare_exchange_strong(next, address(&bk), std::memory_order_release,
                                            std::memory_order_relaxed))
        break;
    }
    bk.state.store(bucket::linked, std::memory_order_release);
    return &bk;
  }

  // At most one entry per two buckets: a hit then walks past few other entries.
  void grow_if_needed(std::size_t size) noexcept {
    std::size_t buckets = bucket_count_.load(std::memory_order_relaxed);
    if (size * 2 > buckets && buckets < (std::size_t{1} << (segment_count - 1))) {
      bucket_count_.compare_exchange_strong(buckets, buckets * 2, std::memory_order_release,
                                            std::memory_order_relaxed);
    }
  }

  [[no_unique_address]] Hash hash_;
  [[no_unique_address]] KeyEqual equal_;
  std::atomic<std::size_t> bucket_count_{initial_buckets};
  std::atomic<std::size_t> size_{0};
  std::atomic<bucket*> segments_[segment_count] = {};
};

}  // namespace uniws
