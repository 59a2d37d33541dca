// co_await of a plain value inside a uniws::task is rejected with a message that says why.
// expect-error: co_await was applied to a value, not an awaitable
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
