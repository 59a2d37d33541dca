// libFuzzer target: the example server's inbound handling - any bytes as a WebSocket text
// frame, and as a login body. Properties: no crash, no unbounded work; a frame is either a
// command within the limits or a bad_request whose message is short and safe to echo.
#include "../../examples/golden_path/protocol.hpp"

#include <uniws/message.hpp>

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <variant>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);
  const golden_path::frame_limits limits{};

  const golden_path::client_frame frame = golden_path::parse_client_frame(in, limits);
  if (const auto* e = std::get_if<golden_path::frame_error>(&frame)) {
    if (e->code != "bad_request" || e->message.empty() || e->message.size() > 200) __builtin_trap();
    // The answer the server sends must be valid JSON whatever the frame held.
    const auto reply = uniws::create_error_message(e->code, e->message);
    if (uniws::detail::json_validator::first_error(reply.text()) != uniws::detail::json_validator::npos)
      __builtin_trap();
  } else if (const auto* j = std::get_if<golden_path::join_frame>(&frame)) {
    if (j->thread_id.empty() || j->thread_id.size() > limits.max_thread_id_length) __builtin_trap();
  } else if (const auto* r = std::get_if<golden_path::run_agent_frame>(&frame)) {
    if (r->thread_id.empty() || r->thread_id.size() > limits.max_thread_id_length) __builtin_trap();
    if (r->steps < 0 || r->steps > limits.max_steps || r->pad > limits.max_pad) __builtin_trap();
  }

  if (const auto login = golden_path::parse_login(in);
      login && (login->user.empty() || login->user.size() > golden_path::max_user_name_length))
    __builtin_trap();
  return 0;
}
