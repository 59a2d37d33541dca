// create_server_message takes validated JSON, never a raw string.
// expect-error: json_text[^a-z_]* (from expression of type|could not bind to an lvalue of type) [^a-z_]*const
// char
#include <uniws/message.hpp>

int main() {
#ifdef UNIWS_COMPILE_FAIL
  auto m = uniws::create_server_message("agent_thinking", "{\"unchecked\": true}");
#else
  auto m = uniws::create_server_message("agent_thinking", uniws::json_text::parse("{\"checked\": true}"));
#endif
  static_cast<void>(m);
}
