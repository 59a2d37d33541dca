// Proves the recycling frame allocator's claim: a hot create-and-await of a task does not
// reach the global allocator. Every operator new in this binary is counted.
#include <uniws/sync_wait.hpp>
#include <uniws/task.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <cstdlib>
#include <new>
#include <vector>

namespace {
std::atomic<long> global_news{0};
}  // namespace

void* operator new(std::size_t n) {
  global_news.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace {

[[gnu::noinline]] uniws::task<int> leaf(int v) { co_return v; }

uniws::task<long> hot_loop(int iterations) {
  long sum = 0;
  for (int i = 0; i < iterations; ++i) sum += co_await leaf(i);
  co_return sum;
}

}  // namespace

TEST_CASE("a hot create-and-await of a task does not call the global allocator") {
  // Warm-up: fills this thread's free list for the leaf's size class.
  CHECK(uniws::sync_wait(hot_loop(10)) == 45);

  auto outer = hot_loop(100'000);  // its own frame is allocated here, before counting
  const long before = global_news.load();
  const long sum = uniws::sync_wait(std::move(outer));
  const long during = global_news.load() - before;
  CHECK(sum == 100'000L * 99'999L / 2);
  // sync_wait's own driver frame is the only allocation allowed: none per await.
  CHECK(during <= 1);
}

// Out of line and held in a vector, so clang cannot elide the frame's heap allocation.
[[gnu::noinline]] uniws::task<int> big_frame(int v) {
  volatile char scratch[4096] = {};
  scratch[v] = static_cast<char>(v);
  co_await std::suspend_never{};  // keeps scratch in the frame
  co_return scratch[v];
}

TEST_CASE("the counter sees frame allocations (so the test above could fail)") {
  // A frame larger than the recycled size classes goes to the global allocator every time.
  const long before = global_news.load();
  std::vector<uniws::task<int>> tasks;
  tasks.reserve(10);
  const long after_reserve = global_news.load();
  for (int i = 0; i < 10; ++i) tasks.push_back(big_frame(i));
  CHECK(global_news.load() - after_reserve == 10);
  for (int i = 0; i < 10; ++i) CHECK(uniws::sync_wait(std::move(tasks[static_cast<std::size_t>(i)])) == i);
  CHECK(after_reserve - before == 1);
}
