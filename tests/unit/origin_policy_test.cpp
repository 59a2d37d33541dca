// The Origin and CORS rules of the example server (docs/protocol.md §B), pure.
#include "../../examples/golden_path/origin_policy.hpp"

#include <catch2/catch.hpp>

using golden_path::normalize_origin;
using golden_path::origin_policy;

TEST_CASE("origins normalise as browsers compare them: case, default ports, garbage",
          "[proto-B2][proto-B3]") {
  CHECK(normalize_origin("http://example.com") == "http://example.com:80");
  CHECK(normalize_origin("HTTP://Example.COM:80") == "http://example.com:80");
  CHECK(normalize_origin("https://example.com") == "https://example.com:443");
  CHECK(normalize_origin("https://example.com:443") == "https://example.com:443");
  CHECK(normalize_origin("http://example.com:8080") == "http://example.com:8080");
  CHECK(normalize_origin("http://127.0.0.1:080") == "http://127.0.0.1:80");
  CHECK(normalize_origin("http://[::1]") == "http://[::1]:80");
  CHECK(normalize_origin("http://[::1]:9000") == "http://[::1]:9000");
  for (const char* bad : {"null", "", "example.com", "ftp://example.com", "http://",
                          "http://example.com/path", "http://user@example.com",
                          "http://example.com:", "http://example.com:99999x", "file://", "http://a b"}) {
    INFO(bad);
    CHECK_FALSE(normalize_origin(bad));
  }
}

TEST_CASE("CORS: only the allowed origins, compared normalised", "[proto-B2]") {
  const origin_policy none({});
  CHECK_FALSE(none.any_allowed());
  CHECK_FALSE(none.allows("http://app.example.com"));

  const origin_policy policy({"http://app.example.com", "https://Admin.example.com:443", "not an origin"});
  CHECK(policy.any_allowed());
  CHECK(policy.allows("http://app.example.com"));
  CHECK(policy.allows("HTTP://APP.example.com:80"));
  CHECK(policy.allows("https://admin.example.com"));
  CHECK_FALSE(policy.allows("https://app.example.com"));      // another scheme is another origin
  CHECK_FALSE(policy.allows("http://app.example.com:8080"));  // another port too
  CHECK_FALSE(policy.allows("http://evil.example.com"));
  CHECK_FALSE(policy.allows("http://app.example.com.evil.net"));
  CHECK_FALSE(policy.allows("null"));  // sandboxed frames, file:// pages
  CHECK_FALSE(policy.allows("not an origin"));
}

TEST_CASE("upgrade: no Origin passes, the server's own origin passes, others only if allowed", "[proto-B3]") {
  const origin_policy none({});
  CHECK(none.allows_upgrade(std::nullopt, "127.0.0.1:8080", false));                    // a script
  CHECK(none.allows_upgrade("http://127.0.0.1:8080", "127.0.0.1:8080", false));         // the demo page
  CHECK(none.allows_upgrade("http://LOCALHOST", "localhost:80", false));                // case, default port
  CHECK_FALSE(none.allows_upgrade("https://127.0.0.1:8080", "127.0.0.1:8080", false));  // scheme differs
  CHECK(none.allows_upgrade("https://127.0.0.1:8443", "127.0.0.1:8443", true));
  CHECK_FALSE(none.allows_upgrade("http://127.0.0.1:9999", "127.0.0.1:8080", false));  // another port
  CHECK_FALSE(none.allows_upgrade("http://evil.example.com", "127.0.0.1:8080", false));
  CHECK_FALSE(none.allows_upgrade("null", "127.0.0.1:8080", false));
  CHECK_FALSE(none.allows_upgrade("", "127.0.0.1:8080", false));

  const origin_policy policy({"http://127.0.0.1:9999"});
  CHECK(policy.allows_upgrade("http://127.0.0.1:9999", "127.0.0.1:8080", false));
  CHECK_FALSE(policy.allows_upgrade("http://127.0.0.1:9998", "127.0.0.1:8080", false));
}
