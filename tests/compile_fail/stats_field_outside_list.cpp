// A stats struct's fields are named in its one list: a field written into the struct but left
// out of fields() would be missing from /stats, /metrics and +=, so it does not compile, and
// says why.
// expect-error: static assertion failed.*not in its fields\(\) list
// typo: none (a misspelled type still declares a field outside the list: clang keeps it, the same error)
#include <uniws/stats.hpp>

#include <array>
#include <cstdint>

struct my_stats {
  std::uint64_t requests = 0;
#ifdef UNIWS_COMPILE_FAIL
  std::uint64_t forgotten = 0;
#endif
  static constexpr auto fields() noexcept {
    return std::array{uniws::stat_field<my_stats>{"requests", uniws::stat_kind::counter, "requests answered",
                                                  &my_stats::requests}};
  }
  constexpr my_stats& operator+=(const my_stats& o) noexcept { return uniws::add_stats(*this, o); }
};

int main() {
  my_stats a, b;
  a += b;
  return static_cast<int>(my_stats::fields().size()) - 1;
}
