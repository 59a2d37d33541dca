// A task dropped without co_await is an error under -Werror, and the message says to co_await it.
// expect-error: nodiscard.*uniws::task is lazy: nothing runs until you co_await it
#include <uniws/task.hpp>

uniws::task<> send_greeting() { co_return; }

uniws::task<> caller() {
#ifdef UNIWS_COMPILE_FAIL
  send_greeting();
#else
  co_await send_greeting();
#endif
}

int main() {
  auto t = caller();
  static_cast<void>(t);
}
