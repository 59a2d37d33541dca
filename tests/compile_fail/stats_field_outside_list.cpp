// A stats struct's fields come from its one list: a field written into the struct by hand
// would be missing from /stats, /metrics and +=, so it does not compile, and says why.
// expect-error: static assertion failed.*a field of my_stats is not in its list
// typo: none (a misspelled type still declares a field outside the list: clang keeps it, the same error)
#include <uniws/stats.hpp>

#define MY_STATS(X) X(requests, counter, "requests answered")

struct my_stats {
  UNIWS_STATS(my_stats, MY_STATS)
#ifdef UNIWS_COMPILE_FAIL
  std::uint64_t forgotten = 0;
#endif
};

int main() {
  my_stats a, b;
  a += b;
  return static_cast<int>(my_stats::fields().size()) - 1;
}
