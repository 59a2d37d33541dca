// The memory bound an operator plans with, measured on glibc's heap. Built only without a
// sanitizer: a sanitizer owns the allocator and glibc's counters then read nothing.
#include <uniws/history.hpp>
#include <uniws/manager.hpp>
#include <uniws/testing.hpp>

#include <catch2/catch.hpp>

#include <malloc.h>

#include <memory>
#include <string>
#include <vector>

using uniws::agent_event_type;
using uniws::json_text;
using manager = uniws::unified_manager<uniws::testing::memory_connection>;

// The bound an operator plans with: an idle user's history, full, on the heap.
TEST_CASE("an idle user's full history holds no more heap than history_memory_bound", "[proto-R4]") {
  uniws::manager_options options;
  options.history.max_events = 256;
  options.history.max_bytes = 64 * 1024;
  constexpr int users = 200;
  const std::string text(300, 'x');
  const std::string thread = "a-thread-id-longer-than-small-strings";
  const auto before = mallinfo2().uordblks;
  {
    std::vector<std::unique_ptr<manager>> managers;
    for (int u = 0; u < users; ++u) {
      managers.push_back(std::make_unique<manager>(options));
      for (int i = 0; i < 1000; ++i)
        managers.back()->emit({agent_event_type::agent_thinking, thread, "r",
                               json_text::object({{"text", json_text::string(text)}})});
    }
    const auto per_user = static_cast<double>(mallinfo2().uordblks - before) / users;
    const auto bound = static_cast<double>(uniws::history_memory_bound(options.history) + sizeof(manager));
    INFO("per user " << per_user << " bytes, bound " << bound);
    CHECK(per_user <= bound);
    CHECK(per_user >= 0.5 * bound);  // the history was full: the bound is not far above the truth
    CHECK(managers.front()->get_stats().history_bytes <= options.history.max_bytes);
  }
}
