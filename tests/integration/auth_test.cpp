// The example server's signed tokens: SHA-256 and HMAC-SHA-256 against published vectors,
// then tokens issued by one store and checked by another with the same secret.
#include "../../examples/golden_path/auth.hpp"

#include <catch2/catch.hpp>

#include <string>

using golden_path::hmac_sha256;
using golden_path::sha256;
using golden_path::to_hex;

TEST_CASE("SHA-256: FIPS 180-4 examples") {
  CHECK(to_hex(sha256::of("")) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(to_hex(sha256::of("abc")) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK(to_hex(sha256::of("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq")) ==
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  CHECK(to_hex(sha256::of(std::string(1000000, 'a'))) ==
        "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST_CASE("HMAC-SHA-256: RFC 4231 test cases 2 and 6") {
  CHECK(to_hex(hmac_sha256("Jefe", "what do ya want for nothing?")) ==
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  CHECK(to_hex(hmac_sha256(std::string(131, '\xaa'), "Test Using Larger Than Block-Size Key - Hash Key First")) ==
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
}

TEST_CASE("signed tokens: any store with the secret accepts them, nothing else does") {
  const std::string secret = "a-secret-of-sixteen-bytes-or-more";
  golden_path::token_store node_a(std::chrono::hours(1), secret), node_b(std::chrono::hours(1), secret);
  golden_path::token_store other(std::chrono::hours(1), "another-secret-entirely-0123");

  for (const std::string user : {"alice", "bob.with.dots", "\xc3\xa9mile", ""}) {
    const std::string token = node_a.issue(user);
    CHECK(node_a.user_for(token) == user);
    CHECK(node_b.user_for(token) == user);
    CHECK_FALSE(other.user_for(token));
  }

  const std::string token = node_a.issue("alice");
  SECTION("a changed byte anywhere is refused") {
    for (std::size_t i = 0; i < token.size(); ++i) {
      std::string forged = token;
      forged[i] = forged[i] == '0' ? '1' : '0';
      CHECK_FALSE(node_b.user_for(forged));
    }
  }
  SECTION("another user's name with alice's MAC is refused") {
    const std::string bob = node_a.issue("bob");
    const std::string spliced = bob.substr(0, bob.rfind('.')) + token.substr(token.rfind('.'));
    CHECK_FALSE(node_b.user_for(spliced));
  }
  SECTION("truncated, empty and malformed tokens are refused") {
    CHECK_FALSE(node_b.user_for(token.substr(0, token.size() - 1)));
    CHECK_FALSE(node_b.user_for(""));
    CHECK_FALSE(node_b.user_for("v1..."));
    CHECK_FALSE(node_b.user_for("v1.zz.99999999999." + token.substr(token.rfind('.') + 1)));
  }
  SECTION("an expired token is refused") {
    golden_path::token_store expired(std::chrono::seconds(0), secret);
    CHECK_FALSE(node_b.user_for(expired.issue("alice")));
  }
}
