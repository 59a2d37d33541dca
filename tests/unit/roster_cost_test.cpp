// What a roster change costs (proto-H11 finding 6): a join or leave copies that connection's
// threads, not the whole user's, and what changes retire stays bounded. Counts every global
// operator new in this binary and reads glibc's heap: built only without a sanitizer.
#include <uniws/manager.hpp>
#include <uniws/testing.hpp>

#include <catch2/catch.hpp>

#include <malloc.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <new>
#include <string>
#include <vector>

namespace {
std::atomic<long> global_news{0};
}  // namespace

// Out of line: g++ would otherwise flag the inlined free() of new-ed memory as mismatched.
[[gnu::noinline]] void* operator new(std::size_t n) {
  global_news.fetch_add(1, std::memory_order_relaxed);
  if (void* p = std::malloc(n == 0 ? 1 : n)) return p;
  throw std::bad_alloc();
}
[[gnu::noinline]] void operator delete(void* p) noexcept { std::free(p); }
[[gnu::noinline]] void operator delete(void* p, std::size_t) noexcept { std::free(p); }

namespace {

using manager = uniws::unified_manager<uniws::testing::memory_connection>;

constexpr int threads_each = 255;
std::string thread_id(int t) { return std::string(120, 't') + std::to_string(10'000'000 + t); }  // 128 bytes

// A user with `connections` connections, each joined to 255 threads of 128-byte ids.
struct crowded_user {
  explicit crowded_user(int connections) : mgr(options()) {
    for (int i = 0; i < connections; ++i) {
      conns.push_back(
          std::make_shared<uniws::testing::memory_connection>(static_cast<uniws::connection_id>(i)));
      REQUIRE(mgr.add_connection(conns.back()));
      for (int t = 0; t < threads_each; ++t)
        REQUIRE(mgr.join_thread(static_cast<uniws::connection_id>(i), thread_id(t)).status ==
                uniws::join_status::joined);
      conns.back()->clear_received();
    }
  }
  static uniws::manager_options options() {
    uniws::manager_options o;
    o.max_threads_per_connection = 256;
    return o;
  }
  // Heap allocations per change over `changes` joins and leaves of connection 0.
  double allocations_per_change(int changes) {
    const std::string extra = thread_id(999);
    const long before = global_news.load();
    for (int i = 0; i < changes / 2; ++i) {
      REQUIRE(mgr.join_thread(0, extra).status == uniws::join_status::joined);
      REQUIRE(mgr.leave_thread(0, extra));
    }
    return static_cast<double>(global_news.load() - before) / changes;
  }
  manager mgr;
  std::vector<std::shared_ptr<uniws::testing::memory_connection>> conns;
};

}  // namespace

TEST_CASE("a join or leave copies that connection's threads, not the user's roster", "[proto-H11]") {
  crowded_user alone(1);
  crowded_user crowded(120);
  const double one = alone.allocations_per_change(200);
  const double many = crowded.allocations_per_change(200);
  INFO("allocations per change: 1 connection " << one << ", 120 connections " << many);
  CHECK(one <= threads_each + 8);  // the connection's ids, its set, the answer
  CHECK(many <= one + 2);          // the other 119 connections cost nothing
}

TEST_CASE("joins of a crowded user hold memory in proportion to what is joined", "[proto-H11]") {
  uniws::detail::epoch_domain::instance().barrier();
  const auto before = mallinfo2().uordblks;
  crowded_user user(120);
  const auto held = static_cast<double>(mallinfo2().uordblks - before);
  // What the joins hold for good: each id once, in a joined_thread.
  const double ids = 120.0 * threads_each * (128 + 1 + sizeof(std::string) + sizeof(std::uint64_t));
  INFO("held " << held / 1e6 << " MB for " << ids / 1e6 << " MB of joined ids");
  // The change retired sets of up to 255 ids; at most a reclaim threshold's worth wait.
  CHECK(held <= 2 * ids);
}
