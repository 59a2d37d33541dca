// libFuzzer target: the JSON escaping, the validator and the envelope builders.
// Properties checked on arbitrary bytes:
//   - escaping any bytes yields valid JSON (and valid UTF-8);
//   - the validator never crashes, and what it accepts parses and stays valid inside an
//     envelope;
//   - error envelopes built from arbitrary code and text are valid JSON.
#include <uniws/events.hpp>
#include <uniws/message.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace {
bool valid(std::string_view s) {
  return uniws::detail::json_validator::first_error(s) == uniws::detail::json_validator::npos;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view in(reinterpret_cast<const char*>(data), size);

  std::string escaped;
  uniws::detail::append_json_string(escaped, in);
  if (!valid(escaped)) __builtin_trap();

  if (valid(in)) {
    const auto payload = uniws::json_text::parse(in);
    if (!valid(uniws::create_server_message("fuzz", payload).text())) __builtin_trap();
    const uniws::agent_event e{uniws::agent_event_type::agent_thinking, std::string(in), std::string(in),
                               payload};
    if (!valid(uniws::encode_event(e, 1).text())) __builtin_trap();
  } else {
    try {
      static_cast<void>(uniws::json_text::parse(in));
      __builtin_trap();  // the validator said no, so parse must throw
    } catch (const uniws::json_error&) {
    }
  }

  const auto half = in.substr(0, size / 2);
  if (!valid(uniws::create_error_message(half, in.substr(size / 2)).text())) __builtin_trap();
  return 0;
}
