// benchmarks/alloc_counter.hpp - counts every global operator new in a benchmark binary, so a
// case can report heap allocations per operation. Include in exactly one TU per binary.
#pragma once

#include <atomic>
#include <cstdlib>
#include <new>

namespace uniws_bench {
inline std::atomic<long> heap_allocations{0};
}  // namespace uniws_bench

// Out of line: g++ would otherwise flag the inlined free() of new-ed memory as mismatched.
[[gnu::noinline]] void* operator new(std::size_t n) {
  uniws_bench::heap_allocations.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
[[gnu::noinline]] void operator delete(void* p) noexcept { std::free(p); }
[[gnu::noinline]] void operator delete(void* p, std::size_t) noexcept { std::free(p); }
