// 4. Calling get_websocket_manager_async and dropping the task is an error under -Werror,
// with a message that says to co_await it.
// expect-error: nodiscard.*until you co_await it
#include <uniws/factory.hpp>
#include <uniws/testing.hpp>

using factory = uniws::manager_factory<uniws::testing::memory_connection>;

uniws::task<> handler(factory* f) {
#ifdef UNIWS_COMPILE_FAIL
  f->get_websocket_manager_async(uniws::basic_user_context("alice"));
  co_return;
#else
  co_await f->get_websocket_manager_async(uniws::basic_user_context("alice"));
#endif
}

int main() {
  factory f;
  auto t = handler(&f);
  static_cast<void>(t);
}
