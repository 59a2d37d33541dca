// create_server_message takes validated JSON, never a raw string.
// expect-error: create_server_message
#include <uniws/message.hpp>

int main() {
#ifdef UNIWS_COMPILE_FAIL
  auto m = uniws::create_server_message("agent_thinking", "{\"unchecked\": true}");
#else
  auto m = uniws::create_server_message("agent_thinking", uniws::json_text::parse("{\"checked\": true}"));
#endif
  static_cast<void>(m);
}
