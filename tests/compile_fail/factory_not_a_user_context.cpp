// 6. Passing something that is not a user_context: the error names the concept.
// expect-error: constraints not satisfied
// expect-error: (requires +user_context<Context>|does not satisfy .user_context.)
#include <uniws/factory.hpp>
#include <uniws/testing.hpp>

#include <string>

using factory = uniws::manager_factory<uniws::testing::memory_connection>;

int main() {
  factory f;
#ifdef UNIWS_COMPILE_FAIL
  auto m = f.get_websocket_manager(std::string("alice"));  // a string is not a context
#else
  auto m = f.get_websocket_manager(uniws::basic_user_context("alice"));
#endif
  static_cast<void>(m);
}
