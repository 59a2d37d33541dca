// 3. The same inside boost::asio::awaitable must not compile either, and with uniws's own
// message: Asio's promise probes whether the awaited object is an asynchronous operation, and
// manager_ref answers that probe with the message. (Boost 1.81's awaitable accepts `co_await 0`
// through a conversion to throw_if_cancelled_1_t(bool), so the manager reference converts to
// nothing.) The positive control drops the co_await.
// expect-error: get_websocket_manager[(][)] is synchronous: it returns the manager itself
#include <uniws/factory.hpp>
#include <uniws/testing.hpp>

#include <boost/asio/awaitable.hpp>
#include <boost/asio/io_context.hpp>

using factory = uniws::manager_factory<uniws::testing::memory_connection>;

boost::asio::awaitable<void> handler(factory* f) {
#ifdef UNIWS_COMPILE_FAIL
  auto m = co_await f->get_websocket_manager(uniws::basic_user_context("alice"));
#else
  auto m = f->get_websocket_manager(uniws::basic_user_context("alice"));
#endif
  m->send_to_user(uniws::message::copy_of("{}"));
  co_return;
}

int main() {
  factory f;
  auto a = handler(&f);
  static_cast<void>(a);
}
