// The example server's tokens and login brake, below the sockets: the JWT front end (base64url,
// splitting, claims) against RFC vectors, OpenSSL's verification through it, and the login
// throttle's limits, window and memory bound. Tokens from PyJWT, over real sockets, are
// tests/integration/jwt_test.py's.
#include "../../examples/golden_path/auth.hpp"

#include <catch2/catch.hpp>

#include <string>
#include <variant>

namespace jwt = golden_path::jwt;

namespace {
template <class T>
jwt::refusal refusal_of(const T& result) {
  REQUIRE(std::holds_alternative<jwt::refusal>(result));
  return std::get<jwt::refusal>(result);
}
}  // namespace

TEST_CASE("base64url: RFC 4648 vectors, no padding, non-canonical and foreign characters refused") {
  const std::pair<std::string, std::string> vectors[] = {
      {"", ""},           {"f", "Zg"},          {"fo", "Zm8"},          {"foo", "Zm9v"},
      {"foob", "Zm9vYg"}, {"fooba", "Zm9vYmE"}, {"foobar", "Zm9vYmFy"}, {"\xfb\xff", "-_8"}};
  for (const auto& [plain, encoded] : vectors) {
    CHECK(jwt::base64url_encode(plain) == encoded);
    CHECK(jwt::base64url_decode(encoded) == plain);
  }
  CHECK_FALSE(jwt::base64url_decode("Zg=="));  // padding is not base64url
  CHECK_FALSE(jwt::base64url_decode("Zh"));    // stray low bits
  CHECK_FALSE(jwt::base64url_decode("Z"));     // one character cannot be a byte
  CHECK_FALSE(jwt::base64url_decode("+/8"));   // the other alphabet
}

// RFC 7515 Appendix A.1: an HS256 JWS with its key. Its exp (2011) is past: the signature
// verifies, the claims do not.
TEST_CASE("HS256: RFC 7515 A.1's token verifies with its key and is then refused as expired") {
  const std::string token =
      "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9"
      ".eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ"
      ".dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
  const auto secret = jwt::base64url_decode(
      "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow");
  REQUIRE(secret);
  const auto key = jwt::key::hs256(*secret);
  CHECK(refusal_of(key.verify(token, {})) == jwt::refusal::expired);
  std::string forged = token;
  forged[forged.size() - 5] = forged[forged.size() - 5] == 'A' ? 'B' : 'A';  // a whole sextet of the MAC
  CHECK(refusal_of(key.verify(forged, {})) == jwt::refusal::bad_signature);
  CHECK(refusal_of(jwt::key::hs256("another-key-of-enough-bytes").verify(token, {})) ==
        jwt::refusal::bad_signature);
}

TEST_CASE("tokens a key signs verify with the same key only, and carry the user") {
  const jwt::claim_rules rules{.audience = "chat", .issuer = "uniws-test"};
  const auto node_a = jwt::key::hs256("a-secret-of-sixteen-bytes-or-more");
  const auto node_b = jwt::key::hs256("a-secret-of-sixteen-bytes-or-more");
  for (const std::string user : {"alice", "bob.with.dots", "\xc3\xa9mile"}) {
    const auto token = node_a.sign(user, std::chrono::seconds(60), rules);
    const auto result = node_b.verify(token, rules);
    REQUIRE(std::holds_alternative<jwt::verified>(result));
    CHECK(std::get<jwt::verified>(result).subject == user);
    CHECK(refusal_of(jwt::key::random_hs256().verify(token, rules)) == jwt::refusal::bad_signature);
  }
  const auto token = node_a.sign("alice", std::chrono::seconds(60), rules);
  CHECK(refusal_of(node_b.verify(token, {.audience = "other"})) == jwt::refusal::wrong_audience);
  CHECK(refusal_of(node_b.verify(token, {.issuer = "other"})) == jwt::refusal::wrong_issuer);
  CHECK(refusal_of(node_b.verify(node_a.sign("alice", std::chrono::seconds(-31), {}), {})) ==
        jwt::refusal::expired);
  // Within the 30 s leeway, an expired token still passes.
  CHECK(std::holds_alternative<jwt::verified>(
      node_b.verify(node_a.sign("alice", std::chrono::seconds(-20), {}), {})));
  SECTION("a changed character anywhere is refused") {
    for (std::size_t i = 0; i < token.size(); ++i) {
      std::string forged = token;
      forged[i] = forged[i] == 'A' ? 'B' : 'A';
      CHECK(std::holds_alternative<jwt::refusal>(node_b.verify(forged, rules)));
    }
  }
}

TEST_CASE("claims: exp required, nbf and iat honoured with leeway, sub required") {
  const jwt::claim_rules rules{};
  const long long now = 1'800'000'000;
  auto check = [&](boost::json::object claims) { return jwt::check_claims(claims, rules, now); };
  CHECK(refusal_of(check({{"sub", "a"}})) == jwt::refusal::no_expiry);
  CHECK(refusal_of(check({{"sub", "a"}, {"exp", "tomorrow"}})) == jwt::refusal::no_expiry);
  CHECK(refusal_of(check({{"sub", "a"}, {"exp", now + 60}, {"nbf", now + 31}})) ==
        jwt::refusal::not_yet_valid);
  CHECK(refusal_of(check({{"sub", "a"}, {"exp", now + 60}, {"iat", now + 31}})) ==
        jwt::refusal::not_yet_valid);
  CHECK(refusal_of(check({{"sub", "a"}, {"exp", now + 60}, {"nbf", "soon"}})) == jwt::refusal::malformed);
  CHECK(std::holds_alternative<jwt::verified>(check({{"sub", "a"}, {"exp", now + 60}, {"nbf", now + 29}})));
  CHECK(std::holds_alternative<jwt::verified>(check({{"sub", "a"}, {"exp", 1.8e9 + 0.5}})));
  CHECK(refusal_of(check({{"exp", now + 60}})) == jwt::refusal::no_subject);
  CHECK(refusal_of(check({{"sub", ""}, {"exp", now + 60}})) == jwt::refusal::no_subject);
  CHECK(refusal_of(check({{"sub", 7}, {"exp", now + 60}})) == jwt::refusal::no_subject);
  const jwt::claim_rules with_aud{.audience = "chat"};
  CHECK(std::holds_alternative<jwt::verified>(jwt::check_claims(
      {{"sub", "a"}, {"exp", now + 60}, {"aud", boost::json::array{"x", "chat"}}}, with_aud, now)));
  CHECK(refusal_of(jwt::check_claims({{"sub", "a"}, {"exp", now + 60}}, with_aud, now)) ==
        jwt::refusal::wrong_audience);
}

TEST_CASE("the front end refuses what is not a JWS before any key is used") {
  const auto key = jwt::key::hs256("a-secret-of-sixteen-bytes-or-more");
  const std::string header = jwt::base64url_encode(R"({"alg":"HS256"})");
  const std::string claims = jwt::base64url_encode(R"({"sub":"a","exp":4000000000})");
  for (const std::string& bad :
       {std::string(), std::string("a.b"), std::string("a.b.c.d"), header + "." + claims,
        header + ".!!." + "AA", jwt::base64url_encode("[]") + "." + claims + ".AA",
        jwt::base64url_encode(R"({"alg":7})") + "." + claims + ".AA",
        header + "." + jwt::base64url_encode("not json") + ".AA", std::string(jwt::max_token_size + 1, 'a')})
    CHECK(std::holds_alternative<jwt::refusal>(key.verify(bad, {})));
  const std::string none = jwt::base64url_encode(R"({"alg":"none"})") + "." + claims + ".";
  CHECK(refusal_of(key.verify(none, {})) == jwt::refusal::wrong_algorithm);
}

TEST_CASE("login throttle: per user and address, per address, per user, over a window, in a bounded table") {
  using golden_path::login_throttle;
  login_throttle t({.per_user_address = 3,
                    .per_address = 5,
                    .per_user = 7,
                    .window = std::chrono::seconds(60),
                    .max_entries = 100});
  for (int i = 0; i < 3; ++i) {
    CHECK_FALSE(t.refused_for("alice", "10.0.0.1"));
    t.failed("alice", "10.0.0.1");
  }
  const auto wait = t.refused_for("alice", "10.0.0.1");
  REQUIRE(wait);
  CHECK(wait->count() >= 59);
  CHECK(wait->count() <= 60);
  CHECK_FALSE(t.refused_for("alice", "10.0.0.2"));  // the same user elsewhere
  CHECK_FALSE(t.refused_for("bob", "10.0.0.1"));    // another user from here
  t.failed("bob", "10.0.0.1");
  t.failed("bob", "10.0.0.1");
  CHECK(t.refused_for("carol", "10.0.0.1"));  // the address reached 5
  for (int i = 0; i < 4; ++i) t.failed("alice", "10.0.1." + std::to_string(i));
  CHECK(t.refused_for("alice", "10.0.2.1"));  // alice reached 7 from everywhere
  t.succeeded("bob", "10.0.0.1");
  CHECK(t.refused_for("bob", "10.0.0.1"));  // a success clears the pair, not the address

  SECTION("the table never holds more than its bound") {
    login_throttle small({.per_user_address = 1,
                          .per_address = 1 << 20,
                          .per_user = 1 << 20,
                          .window = std::chrono::seconds(60),
                          .max_entries = 10});
    for (int i = 0; i < 1000; ++i) small.failed("u" + std::to_string(i), "10.0.0.1");
    CHECK(small.refused_for("u999", "10.0.0.1"));      // the newest is kept
    CHECK_FALSE(small.refused_for("u0", "10.0.0.1"));  // the oldest made room
  }
}
