// jwt.hpp - JSON Web Tokens (RFC 7519) for the example: HS256, RS256 and ES256 through
// OpenSSL 3's EVP API. Nothing cryptographic is written here; this file only splits, decodes
// and checks claims.
//
// One key, one algorithm: a token is verified only with the algorithm the key implies (an RSA
// public key means RS256, never HS256 with the key's PEM as the secret: the key-confusion
// attack), and `alg: none` is never accepted.
#pragma once

#include <boost/json.hpp>

#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ecdsa.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <variant>

namespace golden_path::jwt {

// ---- the front end: no key, no crypto (the fuzz target drives this part) ----

/// Tokens longer than this are refused unread (they arrive in a header or a query).
inline constexpr std::size_t max_token_size = 8 * 1024;

/// base64url without padding (RFC 7515 §2); nothing on bad input.
inline std::optional<std::string> base64url_decode(std::string_view in) {
  auto value = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '-') return 62;
    if (c == '_') return 63;
    return -1;
  };
  if (in.size() % 4 == 1) return std::nullopt;
  std::string out;
  out.reserve(in.size() * 3 / 4);
  std::uint32_t bits = 0;
  int count = 0;
  for (char c : in) {
    const int v = value(c);
    if (v < 0) return std::nullopt;
    bits = (bits << 6) | static_cast<std::uint32_t>(v);
    if (++count == 4) {
      out.push_back(static_cast<char>(bits >> 16));
      out.push_back(static_cast<char>(bits >> 8));
      out.push_back(static_cast<char>(bits));
      bits = 0;
      count = 0;
    }
  }
  if (count == 2) {
    if (bits & 0xF) return std::nullopt;  // non-canonical: stray bits
    out.push_back(static_cast<char>(bits >> 4));
  } else if (count == 3) {
    if (bits & 0x3) return std::nullopt;
    out.push_back(static_cast<char>(bits >> 10));
    out.push_back(static_cast<char>(bits >> 2));
  }
  return out;
}

inline std::string base64url_encode(std::string_view in) {
  static constexpr char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  out.reserve((in.size() + 2) / 3 * 4);
  std::size_t i = 0;
  auto byte = [&](std::size_t k) { return static_cast<std::uint32_t>(static_cast<unsigned char>(in[k])); };
  for (; i + 3 <= in.size(); i += 3) {
    const std::uint32_t b = byte(i) << 16 | byte(i + 1) << 8 | byte(i + 2);
    for (int shift = 18; shift >= 0; shift -= 6) out.push_back(alphabet[(b >> shift) & 63]);
  }
  if (in.size() - i == 1) {
    const std::uint32_t b = byte(i) << 16;
    out.push_back(alphabet[(b >> 18) & 63]);
    out.push_back(alphabet[(b >> 12) & 63]);
  } else if (in.size() - i == 2) {
    const std::uint32_t b = byte(i) << 16 | byte(i + 1) << 8;
    out.push_back(alphabet[(b >> 18) & 63]);
    out.push_back(alphabet[(b >> 12) & 63]);
    out.push_back(alphabet[(b >> 6) & 63]);
  }
  return out;
}

enum class algorithm { hs256, rs256, es256 };

inline std::string_view to_string(algorithm a) {
  switch (a) {
    case algorithm::hs256:
      return "HS256";
    case algorithm::rs256:
      return "RS256";
    case algorithm::es256:
      return "ES256";
  }
  return "?";
}

/// Why a token is refused.
enum class refusal {
  malformed,
  wrong_algorithm,
  bad_signature,
  expired,
  not_yet_valid,
  no_expiry,
  wrong_audience,
  wrong_issuer,
  no_subject,
};

/// The text a log or a test reads. A refusal added without its text is a -Wswitch error.
inline std::string_view describe(refusal r) {
  switch (r) {
    case refusal::malformed:
      return "not three base64url parts of JSON objects";
    case refusal::wrong_algorithm:
      return "the header's alg is not the configured algorithm";
    case refusal::bad_signature:
      return "the signature does not verify with the configured key";
    case refusal::expired:
      return "exp is past";
    case refusal::not_yet_valid:
      return "nbf or iat is in the future";
    case refusal::no_expiry:
      return "no numeric exp claim";
    case refusal::wrong_audience:
      return "aud does not name this server";
    case refusal::wrong_issuer:
      return "iss is not the configured issuer";
    case refusal::no_subject:
      return "no sub claim (the user id)";
  }
  return "?";
}

/// A token split and decoded, its signature not yet checked.
struct parsed_token {
  std::string_view signing_input;  // "header.payload", what the signature covers
  std::string alg;
  boost::json::object claims;
  std::string signature;
};

/// Splits and decodes; checks nothing that needs a key.
inline std::variant<parsed_token, refusal> parse(std::string_view token) {
  if (token.size() > max_token_size) return refusal::malformed;
  const auto first = token.find('.');
  const auto second = first == std::string_view::npos ? first : token.find('.', first + 1);
  if (second == std::string_view::npos || token.find('.', second + 1) != std::string_view::npos)
    return refusal::malformed;
  const auto header = base64url_decode(token.substr(0, first));
  const auto payload = base64url_decode(token.substr(first + 1, second - first - 1));
  auto signature = base64url_decode(token.substr(second + 1));
  if (!header || !payload || !signature) return refusal::malformed;
  boost::system::error_code ec;
  const boost::json::value h = boost::json::parse(*header, ec);
  if (ec || !h.is_object()) return refusal::malformed;
  boost::json::value p = boost::json::parse(*payload, ec);
  if (ec || !p.is_object()) return refusal::malformed;
  const auto* alg = h.as_object().if_contains("alg");
  if (!alg || !alg->is_string()) return refusal::malformed;
  return parsed_token{token.substr(0, second), std::string(alg->as_string()), std::move(p.as_object()),
                      std::move(*signature)};
}

/// What a verified token says.
struct verified {
  std::string subject;
};

struct claim_rules {
  std::string audience = {};  // empty: aud not checked
  std::string issuer = {};    // empty: iss not checked
  std::chrono::seconds leeway{30};
};

inline long long unix_now() {
  return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch())
      .count();
}

/// exp, nbf, iat, aud, iss and sub against the rules, at `now` (unix seconds).
inline std::variant<verified, refusal> check_claims(const boost::json::object& claims,
                                                    const claim_rules& rules, long long now) {
  auto number = [&](std::string_view name) -> std::optional<double> {
    const auto* v = claims.if_contains(name);
    if (!v) return std::nullopt;
    if (v->is_int64()) return static_cast<double>(v->as_int64());
    if (v->is_uint64()) return static_cast<double>(v->as_uint64());
    if (v->is_double()) return v->as_double();
    return std::nullopt;
  };
  const auto leeway = static_cast<double>(rules.leeway.count());
  const auto t = static_cast<double>(now);
  const auto exp = number("exp");
  if (!exp) return refusal::no_expiry;
  if (t > *exp + leeway) return refusal::expired;
  for (std::string_view name : {"nbf", "iat"}) {
    if (claims.contains(name) && !number(name)) return refusal::malformed;
    if (const auto when = number(name); when && *when > t + leeway) return refusal::not_yet_valid;
  }
  if (!rules.issuer.empty()) {
    const auto* iss = claims.if_contains("iss");
    if (!iss || !iss->is_string() || iss->as_string() != rules.issuer) return refusal::wrong_issuer;
  }
  if (!rules.audience.empty()) {
    const auto* aud = claims.if_contains("aud");
    bool named = false;
    if (aud && aud->is_string()) named = aud->as_string() == rules.audience;
    if (aud && aud->is_array())
      for (const auto& a : aud->as_array())
        named = named || (a.is_string() && a.as_string() == rules.audience);
    if (!named) return refusal::wrong_audience;
  }
  const auto* sub = claims.if_contains("sub");
  if (!sub || !sub->is_string() || sub->as_string().empty() || sub->as_string().size() > 256)
    return refusal::no_subject;
  return verified{std::string(sub->as_string())};
}

// ---- the key: OpenSSL does every cryptographic step ----

namespace detail {
struct pkey_free {
  void operator()(EVP_PKEY* k) const noexcept { EVP_PKEY_free(k); }
};
struct md_ctx_free {
  void operator()(EVP_MD_CTX* c) const noexcept { EVP_MD_CTX_free(c); }
};
struct sig_free {
  void operator()(ECDSA_SIG* s) const noexcept { ECDSA_SIG_free(s); }
};
using pkey_ptr = std::shared_ptr<EVP_PKEY>;

// A JWS ES256 signature is r || s, 32 bytes each; OpenSSL verifies DER.
inline std::optional<std::string> es256_to_der(std::string_view raw) {
  if (raw.size() != 64) return std::nullopt;
  std::unique_ptr<ECDSA_SIG, sig_free> sig(ECDSA_SIG_new());
  BIGNUM* r = BN_bin2bn(reinterpret_cast<const unsigned char*>(raw.data()), 32, nullptr);
  BIGNUM* s = BN_bin2bn(reinterpret_cast<const unsigned char*>(raw.data()) + 32, 32, nullptr);
  if (!sig || !r || !s || ECDSA_SIG_set0(sig.get(), r, s) != 1) {
    BN_free(r);
    BN_free(s);
    return std::nullopt;
  }
  const int size = i2d_ECDSA_SIG(sig.get(), nullptr);
  if (size <= 0) return std::nullopt;
  std::string der(static_cast<std::size_t>(size), '\0');
  auto* out = reinterpret_cast<unsigned char*>(der.data());
  if (i2d_ECDSA_SIG(sig.get(), &out) != size) return std::nullopt;
  return der;
}
}  // namespace detail

/// The server's one key: an HS256 secret (signs and verifies) or a public key from an identity
/// provider (verifies only). Thread-safe to share: verification only reads it.
class key {
 public:
  /// HS256 with a shared secret (at least 16 bytes: the caller checks).
  static key hs256(std::string secret) {
    key k;
    k.alg_ = algorithm::hs256;
    k.secret_ = std::move(secret);
    return k;
  }

  /// HS256 with 32 random bytes from OpenSSL's CSPRNG: tokens valid on this process only.
  static key random_hs256() {
    std::string secret(32, '\0');
    if (RAND_bytes(reinterpret_cast<unsigned char*>(secret.data()), static_cast<int>(secret.size())) != 1)
      throw std::runtime_error("RAND_bytes failed");
    return hs256(std::move(secret));
  }

  /// A PEM public key: RSA (2048 bits or more) means RS256, EC P-256 means ES256.
  static key public_pem(std::string_view pem) {
    std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())),
                                                  &BIO_free);
    EVP_PKEY* raw = bio ? PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr) : nullptr;
    if (!raw) throw std::runtime_error("not a PEM public key (-----BEGIN PUBLIC KEY-----)");
    key k;
    k.public_ = detail::pkey_ptr(raw, detail::pkey_free{});
    if (EVP_PKEY_is_a(raw, "RSA")) {
      if (EVP_PKEY_get_bits(raw) < 2048) throw std::runtime_error("an RSA key needs at least 2048 bits");
      k.alg_ = algorithm::rs256;
    } else if (EVP_PKEY_is_a(raw, "EC")) {
      char group[64] = {};
      std::size_t length = 0;
      if (EVP_PKEY_get_group_name(raw, group, sizeof group, &length) != 1 ||
          std::string_view(group) != "prime256v1")
        throw std::runtime_error("an EC key must be on P-256 (ES256)");
      k.alg_ = algorithm::es256;
    } else {
      throw std::runtime_error("the key is neither RSA nor EC P-256");
    }
    return k;
  }

  [[nodiscard]] algorithm alg() const noexcept { return alg_; }
  /// Whether this server can issue tokens (/login): only with a secret.
  [[nodiscard]] bool can_sign() const noexcept { return alg_ == algorithm::hs256; }

  /// A token for `subject`, valid `ttl` from now; HS256 keys only.
  [[nodiscard]] std::string sign(std::string_view subject, std::chrono::seconds ttl,
                                 const claim_rules& rules) const {
    if (!can_sign()) throw std::logic_error("a public key cannot sign");
    const long long now = unix_now();
    // jti: 128 random bits, so two logins in one second get two tokens.
    std::string id(16, '\0');
    if (RAND_bytes(reinterpret_cast<unsigned char*>(id.data()), static_cast<int>(id.size())) != 1)
      throw std::runtime_error("RAND_bytes failed");
    boost::json::object claims{
        {"sub", subject}, {"iat", now}, {"exp", now + ttl.count()}, {"jti", base64url_encode(id)}};
    if (!rules.audience.empty()) claims["aud"] = rules.audience;
    if (!rules.issuer.empty()) claims["iss"] = rules.issuer;
    std::string input = base64url_encode(R"({"alg":"HS256","typ":"JWT"})") + "." +
                        base64url_encode(boost::json::serialize(claims));
    const std::string mac = hmac(input);
    return input + "." + base64url_encode(mac);
  }

  /// The token's user, or why it is refused.
  [[nodiscard]] std::variant<verified, refusal> verify(std::string_view token,
                                                       const claim_rules& rules) const {
    auto parsed = parse(token);
    if (const auto* r = std::get_if<refusal>(&parsed)) return *r;
    const parsed_token& t = std::get<parsed_token>(parsed);
    if (t.alg != to_string(alg_)) return refusal::wrong_algorithm;  // "none" and every other name
    if (!signature_holds(t)) return refusal::bad_signature;
    return check_claims(t.claims, rules, unix_now());
  }

 private:
  key() = default;

  std::string hmac(std::string_view data) const {
    unsigned char out[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    if (!HMAC(EVP_sha256(), secret_.data(), static_cast<int>(secret_.size()),
              reinterpret_cast<const unsigned char*>(data.data()), data.size(), out, &length))
      throw std::runtime_error("HMAC failed");
    return std::string(reinterpret_cast<const char*>(out), length);
  }

  bool signature_holds(const parsed_token& t) const {
    if (alg_ == algorithm::hs256) {
      const std::string expected = hmac(t.signing_input);
      return t.signature.size() == expected.size() &&
             CRYPTO_memcmp(t.signature.data(), expected.data(), expected.size()) == 0;
    }
    std::optional<std::string> der;
    if (alg_ == algorithm::es256) {
      der = detail::es256_to_der(t.signature);
      if (!der) return false;
    }
    const std::string& signature = der ? *der : t.signature;
    std::unique_ptr<EVP_MD_CTX, detail::md_ctx_free> ctx(EVP_MD_CTX_new());
    if (!ctx || EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr, public_.get()) != 1)
      return false;
    return EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(signature.data()),
                            signature.size(), reinterpret_cast<const unsigned char*>(t.signing_input.data()),
                            t.signing_input.size()) == 1;
  }

  algorithm alg_ = algorithm::hs256;
  std::string secret_;
  detail::pkey_ptr public_;
};

}  // namespace golden_path::jwt
