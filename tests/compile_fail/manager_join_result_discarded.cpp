// A join's result dropped is an error under -Werror: a refused join must not pass unnoticed.
// expect-error: nodiscard.*a join may be refused
#include <uniws/manager.hpp>
#include <uniws/testing.hpp>

int main() {
  uniws::unified_manager<uniws::testing::memory_connection> m;
#ifdef UNIWS_COMPILE_FAIL
  m.join_thread(1, "t1");
#else
  if (!m.join_thread(1, "t1")) return 0;
#endif
}
