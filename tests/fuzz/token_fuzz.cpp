// libFuzzer: the JWT front end (examples/golden_path/jwt.hpp) on arbitrary bytes: splitting,
// base64url, the header and claims JSON, then the claim checks. Whatever comes in, it answers
// with a refusal or a subject, never a crash, and never a subject from a token it did not parse.
// The signature step is OpenSSL's and is not fuzzed here.
#include "../../examples/golden_path/jwt.hpp"

#include <cstddef>
#include <cstdint>
#include <string_view>
#include <variant>

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  namespace jwt = golden_path::jwt;
  const std::string_view token(reinterpret_cast<const char*>(data), size);
  auto parsed = jwt::parse(token);
  if (auto* t = std::get_if<jwt::parsed_token>(&parsed)) {
    if (t->signing_input.size() >= token.size())
      __builtin_trap();  // the signature part is not in what it covers
    const auto claims = jwt::check_claims(t->claims, {.audience = "chat", .issuer = "idp"}, 1'800'000'000);
    if (const auto* v = std::get_if<jwt::verified>(&claims); v && v->subject.empty()) __builtin_trap();
    // Round trip: what decodes re-encodes to the same text (base64url is canonical here).
    const auto header_text = token.substr(0, token.find('.'));
    const auto header = jwt::base64url_decode(header_text);
    if (!header || jwt::base64url_encode(*header) != header_text) __builtin_trap();
  }
  // The same through a key: a fixed key must refuse whatever a fuzzer can make.
  static const auto key = jwt::key::hs256("fuzzing-key-of-enough-bytes");
  if (std::holds_alternative<jwt::verified>(key.verify(token, {}))) __builtin_trap();
  return 0;
}
