// 1. co_await of the synchronous getter inside a uniws::task names the fix.
// expect-error: get_websocket_manager[(][)] is synchronous: it returns the manager itself
#include <uniws/factory.hpp>
#include <uniws/testing.hpp>

using factory = uniws::manager_factory<uniws::testing::memory_connection>;

uniws::task<> handler(factory* f) {
#ifdef UNIWS_COMPILE_FAIL
  auto m = co_await f->get_websocket_manager(uniws::basic_user_context("alice"));
#else
  auto m = co_await f->get_websocket_manager_async(uniws::basic_user_context("alice"));
#endif
  m->send_to_user(uniws::message::copy_of("{}"));
}

int main() {
  factory f;
  auto t = handler(&f);
  static_cast<void>(t);
}
