// 5. Using the task as if it were the manager, without co_await, does not compile.
// expect-error: static assertion failed.*co_await the task first
#include <uniws/factory.hpp>
#include <uniws/testing.hpp>

using factory = uniws::manager_factory<uniws::testing::memory_connection>;

uniws::task<> handler(factory* f) {
#ifdef UNIWS_COMPILE_FAIL
  f->get_websocket_manager_async(uniws::basic_user_context("alice"))
      ->send_to_user(uniws::message::copy_of("{}"));
#else
  (co_await f->get_websocket_manager_async(uniws::basic_user_context("alice")))
      ->send_to_user(uniws::message::copy_of("{}"));
#endif
}

int main() {
  factory f;
  auto t = handler(&f);
  static_cast<void>(t);
}
