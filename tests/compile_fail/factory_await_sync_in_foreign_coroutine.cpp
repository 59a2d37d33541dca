// 2. The same inside a third-party coroutine type whose promise has no await_transform:
// the manager reference's own operator co_await names the fix.
// expect-error: get_websocket_manager[(][)] is synchronous: it returns the manager itself
#include <uniws/factory.hpp>
#include <uniws/testing.hpp>

#include <coroutine>
#include <exception>

struct fire_and_forget {
  struct promise_type {
    fire_and_forget get_return_object() noexcept { return {}; }
    std::suspend_never initial_suspend() noexcept { return {}; }
    std::suspend_never final_suspend() noexcept { return {}; }
    void return_void() noexcept {}
    void unhandled_exception() noexcept { std::terminate(); }
  };
};

using factory = uniws::manager_factory<uniws::testing::memory_connection>;

fire_and_forget handler(factory* f) {
#ifdef UNIWS_COMPILE_FAIL
  auto m = co_await f->get_websocket_manager(uniws::basic_user_context("alice"));
#else
  auto m = co_await f->get_websocket_manager_async(uniws::basic_user_context("alice"));
#endif
  m->send_to_user(uniws::message::copy_of("{}"));
}

int main() {
  factory f;
  handler(&f);
}
