// uniws/detail/frame_allocator.hpp - recycles coroutine frames through thread-local free lists.
//
// Every block is an individual ::operator new allocation rounded up to its size class, so
// any thread may free any block: a frame freed on another thread simply joins that
// thread's cache. Caches are capped (no unbounded hoarding) and drained when the thread exits.
#pragma once

#include <cstddef>
#include <cstdint>
#include <new>

#if defined(UNIWS_TEST_COUNTERS)
#include <atomic>
#endif

#if defined(__SANITIZE_ADDRESS__)
#define UNIWS_DETAIL_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define UNIWS_DETAIL_ASAN 1
#endif
#endif

namespace uniws::detail {

#if defined(UNIWS_TEST_COUNTERS)
/// Test-build counters: frames handed out and not yet freed; blocks taken from ::operator new
/// and not yet given back.
struct frame_stats {
  static inline std::atomic<long> live_frames{0};
  static inline std::atomic<long> system_blocks{0};
};
#endif

class frame_allocator {
 public:
  static constexpr std::size_t granularity = 64;
  static constexpr std::size_t class_count = 16;  // frames up to 1 KiB are recycled
  static constexpr std::uint32_t cached_per_class = 64;

  static void* allocate(std::size_t n) {
#if defined(UNIWS_TEST_COUNTERS)
    frame_stats::live_frames.fetch_add(1, std::memory_order_relaxed);
#endif
#if defined(UNIWS_DETAIL_ASAN)  // under ASan every frame goes to the system, so reuse is checked
    return system_allocate(n);
#else
    const std::size_t c = size_class(n);
    if (c < class_count) {
      cache& tl = thread_cache;
      if (tl.sizes[c] != 0) [[likely]]
        return tl.blocks[c][--tl.sizes[c]];
    }
    return system_allocate(c < class_count ? (c + 1) * granularity : n);
#endif
  }

  static void deallocate(void* p, std::size_t n) noexcept {
#if defined(UNIWS_TEST_COUNTERS)
    frame_stats::live_frames.fetch_sub(1, std::memory_order_relaxed);
#endif
#if defined(UNIWS_DETAIL_ASAN)
    static_cast<void>(n);
#else
    const std::size_t c = size_class(n);
    if (c < class_count) {
      cache& tl = thread_cache;
      // capacity is 0 until the thread's reaper is armed and again once it has run, so this
      // one comparison also keeps frames out of a cache that nobody would drain.
      if (tl.sizes[c] < tl.capacity) [[likely]] {
        tl.blocks[c][tl.sizes[c]++] = p;
        return;
      }
      if (arm_reaper()) {
        tl.blocks[c][tl.sizes[c]++] = p;
        return;
      }
    }
#endif
    system_deallocate(p);
  }

 private:
  // Blocks are kept in arrays, not threaded through the blocks themselves: a pop then depends
  // only on the count, not on a load from the block that was just freed.
  struct cache {
    void* blocks[class_count][cached_per_class];
    std::uint32_t sizes[class_count];
    std::uint32_t capacity;
    bool reaper_armed;
  };
  // constinit + trivially destructible: the hot path reads it with no TLS init guard.
  static inline constinit thread_local cache thread_cache{};

  struct reaper {
    reaper() = default;
    reaper(const reaper&) = delete;
    reaper& operator=(const reaper&) = delete;
    ~reaper() {
      cache& tl = thread_cache;
      tl.capacity = 0;  // frames freed later in thread teardown go straight to the system
      for (std::size_t c = 0; c < class_count; ++c) {
        while (tl.sizes[c] != 0) system_deallocate(tl.blocks[c][--tl.sizes[c]]);
      }
    }
  };

  static constexpr std::size_t size_class(std::size_t n) noexcept {
    return n == 0 ? 0 : (n - 1) / granularity;
  }

  // Out of line, once per thread: registers the destructor that drains the cache, then opens
  // it. Returns false once the thread is exiting (the cache is closed for good).
  [[gnu::noinline]] static bool arm_reaper() noexcept {
    cache& tl = thread_cache;
    if (tl.reaper_armed) return false;
    tl.reaper_armed = true;
    static thread_local reaper r;
    static_cast<void>(r);
    tl.capacity = cached_per_class;
    return true;
  }

  static void* system_allocate(std::size_t n) {
    void* p = ::operator new(n);
#if defined(UNIWS_TEST_COUNTERS)
    frame_stats::system_blocks.fetch_add(1, std::memory_order_relaxed);
#endif
    return p;
  }

  static void system_deallocate(void* p) noexcept {
#if defined(UNIWS_TEST_COUNTERS)
    frame_stats::system_blocks.fetch_sub(1, std::memory_order_relaxed);
#endif
    ::operator delete(p);
  }
};

/// Base for promise types whose frames are recycled.
struct recycled_frame {
  static void* operator new(std::size_t n) { return frame_allocator::allocate(n); }
  static void operator delete(void* p, std::size_t n) noexcept { frame_allocator::deallocate(p, n); }
};

}  // namespace uniws::detail
