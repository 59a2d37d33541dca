// What a WebSocket upgrade's token check costs: the example's jwt.hpp (OpenSSL 3 EVP) against
// libjwt 1.10 (Debian's libjwt-dev, the library a C or C++ user would pick), verifying the same
// token signed by libjwt: HS256, RS256 (2048-bit) and ES256. Each side checks what the server
// needs: the signature with the configured algorithm, exp, and a sub.
//
// Before timing, every case checks that both accept the token: the tokens come from libjwt, so
// this is also jwt.hpp read against an implementation nobody here wrote.
#include "../examples/golden_path/jwt.hpp"
#include "ratio_reporter.hpp"

#include <benchmark/benchmark.h>
#include <jwt.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <cstdlib>
#include <ctime>
#include <memory>
#include <stdexcept>
#include <string>

namespace {

namespace gj = golden_path::jwt;

struct key_pair {
  std::string private_pem, public_pem;
};

std::string pem_of(EVP_PKEY* key, bool is_private) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new(BIO_s_mem()), &BIO_free);
  const int ok = is_private ? PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr)
                            : PEM_write_bio_PUBKEY(bio.get(), key);
  if (ok != 1) throw std::runtime_error("PEM write failed");
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<std::size_t>(n));
}

key_pair make_keys(jwt_alg_t alg) {
  EVP_PKEY* key = alg == JWT_ALG_RS256 ? EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", std::size_t{2048})
                                       : EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256");
  if (!key) throw std::runtime_error("keygen failed");
  key_pair k{pem_of(key, true), pem_of(key, false)};
  EVP_PKEY_free(key);
  return k;
}

const std::string secret = "a-shared-secret-of-32-bytes-0123";

struct fixture {
  jwt_alg_t alg;
  std::string verify_key;  // the secret, or the public key's PEM
  std::string token;       // signed by libjwt
};

fixture make_fixture(jwt_alg_t alg) {
  fixture f{alg, secret, {}};
  std::string signing_key = secret;
  if (alg != JWT_ALG_HS256) {
    const key_pair k = make_keys(alg);
    signing_key = k.private_pem;
    f.verify_key = k.public_pem;
  }
  jwt_t* t = nullptr;
  jwt_new(&t);
  jwt_add_grant(t, "sub", "alice");
  jwt_add_grant_int(t, "iat", static_cast<long>(std::time(nullptr)));
  jwt_add_grant_int(t, "exp", static_cast<long>(std::time(nullptr)) + 3600);
  jwt_set_alg(t, alg, reinterpret_cast<const unsigned char*>(signing_key.data()),
              static_cast<int>(signing_key.size()));
  char* encoded = jwt_encode_str(t);
  if (!encoded) throw std::runtime_error("libjwt could not sign");
  f.token = encoded;
  std::free(encoded);  // libjwt 1.10 allocates with malloc and has no jwt_free_str
  jwt_free(t);
  return f;
}

// libjwt as its users write it: decode with the key, then the algorithm, exp and sub by hand
// (1.10 has no claim validator).
bool libjwt_accepts(const fixture& f) {
  jwt_t* t = nullptr;
  if (jwt_decode(&t, f.token.c_str(), reinterpret_cast<const unsigned char*>(f.verify_key.data()),
                 static_cast<int>(f.verify_key.size())) != 0)
    return false;
  const bool ok = jwt_get_alg(t) == f.alg &&
                  jwt_get_grant_int(t, "exp") + 30 >= static_cast<long>(std::time(nullptr)) &&
                  jwt_get_grant(t, "sub") != nullptr;
  jwt_free(t);
  return ok;
}

gj::key uniws_key(const fixture& f) {
  return f.alg == JWT_ALG_HS256 ? gj::key::hs256(f.verify_key) : gj::key::public_pem(f.verify_key);
}

void run_libjwt(benchmark::State& state, jwt_alg_t alg) {
  const fixture f = make_fixture(alg);
  if (!libjwt_accepts(f)) return state.SkipWithError("libjwt refuses its own token");
  for (auto _ : state) benchmark::DoNotOptimize(libjwt_accepts(f));
  state.SetItemsProcessed(state.iterations());
}

void run_uniws(benchmark::State& state, jwt_alg_t alg) {
  const fixture f = make_fixture(alg);
  const gj::key key = uniws_key(f);
  if (!std::holds_alternative<gj::verified>(key.verify(f.token, {})))
    return state.SkipWithError("jwt.hpp refuses libjwt's token");
  for (auto _ : state) benchmark::DoNotOptimize(key.verify(f.token, {}));
  state.SetItemsProcessed(state.iterations());
}

void libjwt_HS256(benchmark::State& s) { run_libjwt(s, JWT_ALG_HS256); }
void libjwt_RS256(benchmark::State& s) { run_libjwt(s, JWT_ALG_RS256); }
void libjwt_ES256(benchmark::State& s) { run_libjwt(s, JWT_ALG_ES256); }
void uniws_HS256(benchmark::State& s) { run_uniws(s, JWT_ALG_HS256); }
void uniws_RS256(benchmark::State& s) { run_uniws(s, JWT_ALG_RS256); }
void uniws_ES256(benchmark::State& s) { run_uniws(s, JWT_ALG_ES256); }

}  // namespace

// Named "<implementation>/<algorithm>" so the reporter compares like with like.
BENCHMARK(libjwt_HS256)->Name("libjwt/HS256");
BENCHMARK(uniws_HS256)->Name("uniws/HS256");
BENCHMARK(libjwt_RS256)->Name("libjwt/RS256");
BENCHMARK(uniws_RS256)->Name("uniws/RS256");
BENCHMARK(libjwt_ES256)->Name("libjwt/ES256");
BENCHMARK(uniws_ES256)->Name("uniws/ES256");

int main(int argc, char** argv) { return uniws_bench::run_with_ratios(argc, argv, {"libjwt"}); }
