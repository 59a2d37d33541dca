// uniws/redis/credentials.hpp - who a Redis broker logs in as.
//
// Every connection a broker opens (publishing, subscribing, each shard's, every reconnect's)
// sends AUTH before anything else and counts as up only once Redis said OK. A refusal
// (WRONGPASS, NOPERM, a password given to a Redis that has none) is counted in
// broker_stats::auth_failures, shown by the `refused` gauge, and retried with backoff: an
// operator may be fixing the ACL right now.
#pragma once

#include <string>

namespace uniws::redis {

/// AUTH [user] password. Never printed by uniws: keep it out of command lines and logs too.
struct credentials {
  std::string user;      ///< an ACL user (Redis 6+); empty: the default user (`requirepass`)
  std::string password;  ///< empty: no AUTH is sent
};

}  // namespace uniws::redis
