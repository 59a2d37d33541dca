// uniws/detail/frame_allocator.hpp - recycles coroutine frames through thread-local free lists.
//
// Every block is an individual ::operator new allocation rounded up to its size class, so
// any thread may free any block: a frame freed on another thread simply joins that
// thread's list. Lists are capped (no unbounded hoarding) and drained when the thread exits.
#pragma once

#include <cstddef>
#include <cstdint>
#include <new>

#if defined(UNIWS_FRAME_STATS)
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

#if defined(UNIWS_FRAME_STATS)
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
  static constexpr std::uint32_t max_cached_per_class = 512;

  static void* allocate(std::size_t n) {
#if defined(UNIWS_FRAME_STATS)
    frame_stats::live_frames.fetch_add(1, std::memory_order_relaxed);
#endif
    const std::size_t c = size_class(n);
#if !defined(UNIWS_DETAIL_ASAN)  // under ASan every frame goes to the system, so reuse is checked
    if (c < class_count) {
      cache& tl = thread_cache;
      if (node* p = tl.heads[c]) {
        tl.heads[c] = p->next;
        --tl.counts[c];
        return p;
      }
    }
#endif
    return system_allocate(c < class_count ? (c + 1) * granularity : n);
  }

  static void deallocate(void* p, std::size_t n) noexcept {
#if defined(UNIWS_FRAME_STATS)
    frame_stats::live_frames.fetch_sub(1, std::memory_order_relaxed);
#endif
    const std::size_t c = size_class(n);
#if !defined(UNIWS_DETAIL_ASAN)
    if (c < class_count) {
      cache& tl = thread_cache;
      if (!tl.exiting && tl.counts[c] < max_cached_per_class) {
        if (!tl.reaper_armed) arm_reaper();
        tl.heads[c] = ::new (p) node{tl.heads[c]};
        ++tl.counts[c];
        return;
      }
    }
#endif
    system_deallocate(p);
  }

 private:
  struct node {
    node* next;
  };
  struct cache {
    node* heads[class_count];
    std::uint32_t counts[class_count];
    bool reaper_armed;
    bool exiting;
  };
  // constinit + trivially destructible: the hot path reads it with no TLS init guard.
  static inline constinit thread_local cache thread_cache{};

  struct reaper {
    reaper() = default;
    reaper(const reaper&) = delete;
    reaper& operator=(const reaper&) = delete;
    ~reaper() {
      cache& tl = thread_cache;
      tl.exiting = true;  // frames freed later in thread teardown go straight to the system
      for (std::size_t c = 0; c < class_count; ++c) {
        while (node* p = tl.heads[c]) {
          tl.heads[c] = p->next;
          system_deallocate(p);
        }
        tl.counts[c] = 0;
      }
    }
  };

  static constexpr std::size_t size_class(std::size_t n) noexcept {
    return n == 0 ? 0 : (n - 1) / granularity;
  }

  // Out of line: runs once per thread, registers the destructor that drains the lists.
  [[gnu::noinline]] static void arm_reaper() {
    static thread_local reaper r;
    static_cast<void>(r);
    thread_cache.reaper_armed = true;
  }

  static void* system_allocate(std::size_t n) {
    void* p = ::operator new(n);
#if defined(UNIWS_FRAME_STATS)
    frame_stats::system_blocks.fetch_add(1, std::memory_order_relaxed);
#endif
    return p;
  }

  static void system_deallocate(void* p) noexcept {
#if defined(UNIWS_FRAME_STATS)
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
