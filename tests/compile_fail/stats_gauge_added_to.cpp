// A gauge is a level read where it lives (the owner sets it in the snapshot), so atomic_stats
// keeps only counters: adding to a gauge does not compile, and says why.
// expect-error: a gauge is read where it lives
#include <uniws/stats.hpp>

#include <array>
#include <cstdint>

struct my_stats {
  std::uint64_t requests = 0;
  std::uint64_t open = 0;
  static constexpr auto fields() noexcept {
    using f = uniws::stat_field<my_stats>;
    return std::array{f{"requests", uniws::stat_kind::counter, "requests answered", &my_stats::requests},
                      f{"open", uniws::stat_kind::gauge, "open sockets", &my_stats::open}};
  }
};

int main() {
  uniws::atomic_stats<my_stats> live;
#ifdef UNIWS_COMPILE_FAIL
  live.add<&my_stats::open>();
#else
  live.add<&my_stats::requests>();
#endif
  return static_cast<int>(live.snapshot().requests) - 1;
}
