// co_await of a plain value inside a uniws::task is rejected with a message that says why.
// expect-error: static assertion failed.*co_await was applied to a value, not an awaitable
// typo: none (the failing line, `co_await 42`, has no name to misspell)
#include <uniws/task.hpp>

uniws::task<int> answer() {
#ifdef UNIWS_COMPILE_FAIL
  co_return co_await 42;
#else
  co_return 42;
#endif
}

int main() {
  auto t = answer();
  static_cast<void>(t);
}
