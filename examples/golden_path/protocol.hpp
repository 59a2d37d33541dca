// protocol.hpp - what a client may send, parsed and checked without side effects (so it can be fuzzed):
// the WebSocket frames of docs/protocol.md and the login body. The server acts on the result.
#pragma once

#include <uniws/history.hpp>

#include <boost/json.hpp>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

namespace golden_path {

struct frame_error {
  std::string code;  // "bad_request"
  std::string message;
};
struct ping_frame {};
struct join_frame {
  std::string thread_id;
  std::optional<uniws::resume_point> resume;  // epoch + after_seq: resume (docs/protocol.md §R)
};
struct leave_frame {
  std::string thread_id;
};
struct run_agent_frame {
  std::string thread_id;
  std::string message;
  int steps = 1;        // thinking events (load tests ask for more)
  std::size_t pad = 0;  // bytes of padding per thinking event
};
using client_frame = std::variant<frame_error, ping_frame, join_frame, leave_frame, run_agent_frame>;

struct frame_limits {
  std::size_t max_thread_id_length = 128;
  int max_steps = 10'000;
  std::size_t max_pad = 65'536;
};

namespace detail {
inline const boost::json::string* string_field(const boost::json::object& o, std::string_view name) {
  const auto it = o.find(name);
  return it == o.end() ? nullptr : it->value().if_string();
}
inline frame_error bad_request(std::string message) { return {"bad_request", std::move(message)}; }
}  // namespace detail

/// One text frame from a client: a command, or the error event to answer it with.
inline client_frame parse_client_frame(std::string_view text, const frame_limits& limits) {
  namespace json = boost::json;
  json::error_code ec;
  const json::value v = json::parse(text, ec);
  if (ec) return detail::bad_request("the frame is not JSON");
  const json::object* o = v.if_object();
  if (!o) return detail::bad_request("the frame is not a JSON object");
  const json::string* type = detail::string_field(*o, "type");
  if (!type) return detail::bad_request("missing \"type\"");
  if (*type == "ping") return ping_frame{};
  if (*type != "join" && *type != "leave" && *type != "run_agent")
    return detail::bad_request("unknown type \"" + std::string(type->subview().substr(0, 64)) + "\"");

  const json::string* thread = detail::string_field(*o, "thread_id");
  if (!thread || thread->empty()) return detail::bad_request("missing \"thread_id\"");
  if (thread->size() > limits.max_thread_id_length)
    return detail::bad_request("\"thread_id\" is longer than " + std::to_string(limits.max_thread_id_length) +
                               " bytes");
  std::string thread_id(thread->subview());
  if (*type == "join") {
    const bool has_epoch = o->contains("epoch"), has_after = o->contains("after_seq");
    if (!has_epoch && !has_after) return join_frame{std::move(thread_id), std::nullopt};
    if (has_epoch != has_after) return detail::bad_request("a resume needs both \"epoch\" and \"after_seq\"");
    const json::string* epoch_text = detail::string_field(*o, "epoch");
    const auto epoch = epoch_text ? uniws::history_epoch::parse(epoch_text->subview()) : std::nullopt;
    if (!epoch) return detail::bad_request("\"epoch\" must be the 32 hex digits of a joined answer");
    const json::value& after = o->at("after_seq");
    if (!(after.is_uint64() || (after.is_int64() && after.as_int64() >= 0)))
      return detail::bad_request("\"after_seq\" must be an integer, 0 or more");
    const auto seq = after.is_uint64() ? after.as_uint64() : static_cast<std::uint64_t>(after.as_int64());
    return join_frame{std::move(thread_id), uniws::resume_point{*epoch, seq}};
  }
  if (*type == "leave") return leave_frame{std::move(thread_id)};

  run_agent_frame run{std::move(thread_id), {}, 1, 0};
  if (const json::string* prompt = detail::string_field(*o, "message"))
    run.message = std::string(prompt->subview());
  if (const auto it = o->find("steps"); it != o->end()) {
    if (!it->value().is_int64() || it->value().as_int64() < 0 || it->value().as_int64() > limits.max_steps)
      return detail::bad_request("\"steps\" must be an integer from 0 to " +
                                 std::to_string(limits.max_steps));
    run.steps = static_cast<int>(it->value().as_int64());
  }
  if (const auto it = o->find("pad"); it != o->end()) {
    if (!it->value().is_int64() || it->value().as_int64() < 0 ||
        static_cast<std::size_t>(it->value().as_int64()) > limits.max_pad)
      return detail::bad_request("\"pad\" must be an integer from 0 to " + std::to_string(limits.max_pad));
    run.pad = static_cast<std::size_t>(it->value().as_int64());
  }
  return run;
}

/// Longer user names are refused (400): the login brake keeps names it has seen failing, and a
/// user id is a JWT's sub, which jwt.hpp bounds the same way.
inline constexpr std::size_t max_user_name_length = 256;

struct credentials {
  std::string user;
  std::string password;
};

/// `{"user":"...","password":"..."}`, or nothing if the body is not that.
inline std::optional<credentials> parse_login(std::string_view body) {
  namespace json = boost::json;
  json::error_code ec;
  const json::value v = json::parse(body, ec);
  const json::object* o = ec ? nullptr : v.if_object();
  if (!o) return std::nullopt;
  const json::string* user = detail::string_field(*o, "user");
  const json::string* password = detail::string_field(*o, "password");
  if (!user || !password || user->empty() || user->size() > max_user_name_length) return std::nullopt;
  return credentials{std::string(user->subview()), std::string(password->subview())};
}

}  // namespace golden_path
