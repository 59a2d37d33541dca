// tests/support/spin_barrier.hpp - a barrier that releases its threads within nanoseconds of
// each other (they spin on one word, yielding), where std::barrier wakes them one by one through
// the kernel, microseconds apart: a race whose window is a few instructions wide is hit only
// when threads truly start together. Use one thread per core.
#pragma once

#include <atomic>
#include <cstddef>
#include <thread>

namespace uniws_test {

class spin_barrier {
 public:
  explicit spin_barrier(int threads) noexcept : threads_(threads) {}

  void arrive_and_wait() noexcept {
    const std::size_t g = generation_.load();
    if (arrived_.fetch_add(1) + 1 == threads_) {
      arrived_.store(0);
      generation_.fetch_add(1);
    } else {
      while (generation_.load() == g) std::this_thread::yield();
    }
  }

 private:
  const int threads_;
  std::atomic<int> arrived_{0};
  std::atomic<std::size_t> generation_{0};
};

}  // namespace uniws_test
