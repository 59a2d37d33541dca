// uniws/redis/tls_options.hpp - TLS to Redis: which CA a broker trusts, and its own certificate
// if Redis asks for one.
//
// With TLS on, every connection of a broker (publishing, subscribing, slot-map reads, each
// shard's) runs through OpenSSL (Asio's SSL stream) and verifies the server's certificate:
// signed by the CA in `ca_file`, and naming the host or IP address the broker connects to (a
// cluster's nodes as CLUSTER SLOTS announces them). A certificate that fails is refused like a
// wrong password: counted in broker_stats::tls_failures, shown by the `refused` gauge, retried
// with backoff. Needs OpenSSL 3 (Debian: libssl-dev), linked as OpenSSL::SSL.
#pragma once

#include <string>

namespace uniws::redis {

/// PEM files; an empty `ca_file` leaves TLS off.
struct tls_options {
  std::string ca_file;    ///< the CA that signed Redis' certificate; empty: plain TCP
  std::string cert_file;  ///< this node's certificate, for a Redis with `tls-auth-clients yes`
  std::string key_file;   ///< the key of `cert_file`
};

}  // namespace uniws::redis
