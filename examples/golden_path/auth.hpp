// auth.hpp - the example's users, its tokens (JWTs: jwt.hpp) and the brake on password guessing.
#pragma once

#include "jwt.hpp"

#include <openssl/crypto.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <fstream>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <variant>

namespace golden_path {

class user_directory {
 public:
  /// The built-in demo pair, so the demo runs with no setup.
  static user_directory demo() {
    user_directory d;
    d.passwords_ = {{"alice", "alice-pw"}, {"bob", "bob-pw"}};
    return d;
  }

  /// One `name:password` a line; blank lines and lines starting with # are skipped.
  static user_directory from_file(const std::string& path) {
    std::ifstream in(path);
    if (!in) throw std::runtime_error("cannot read users file " + path);
    user_directory d;
    std::string line;
    int number = 0;
    while (std::getline(in, line)) {
      ++number;
      if (!line.empty() && line.back() == '\r') line.pop_back();
      if (line.empty() || line.front() == '#') continue;
      const auto colon = line.find(':');
      if (colon == 0 || colon == std::string::npos)
        throw std::runtime_error(path + ":" + std::to_string(number) + ": expected name:password");
      d.passwords_[line.substr(0, colon)] = line.substr(colon + 1);
    }
    if (d.passwords_.empty()) throw std::runtime_error(path + ": no users");
    return d;
  }

  [[nodiscard]] bool known(std::string_view user) const { return passwords_.count(std::string(user)) != 0; }

  [[nodiscard]] bool check(std::string_view user, std::string_view password) const {
    const auto it = passwords_.find(std::string(user));
    const std::string& expected = it == passwords_.end() ? decoy_ : it->second;
    // OpenSSL's constant-time compare: timing does not reveal a prefix. (Lengths may differ:
    // a length is not a secret worth a timing channel here.)
    const bool same = expected.size() == password.size() &&
                      CRYPTO_memcmp(expected.data(), password.data(), password.size()) == 0;
    return same && it != passwords_.end();
  }

 private:
  std::unordered_map<std::string, std::string> passwords_;
  std::string decoy_ = "decoy-password";
};

/// The server's tokens: JWTs it signs (HS256, /login) or an identity provider signs (RS256 or
/// ES256). Verified tokens need no store: any node with the same key accepts them.
class token_authority {
 public:
  token_authority(jwt::key key, jwt::claim_rules rules, std::chrono::seconds ttl)
      : key_(std::move(key)), rules_(std::move(rules)), ttl_(ttl) {}

  [[nodiscard]] bool can_issue() const noexcept { return key_.can_sign(); }
  [[nodiscard]] std::string issue(std::string_view user) const { return key_.sign(user, ttl_, rules_); }
  [[nodiscard]] std::variant<jwt::verified, jwt::refusal> verify(std::string_view token) const {
    return key_.verify(token, rules_);
  }
  [[nodiscard]] std::chrono::seconds ttl() const noexcept { return ttl_; }
  [[nodiscard]] jwt::algorithm algorithm() const noexcept { return key_.alg(); }

 private:
  jwt::key key_;
  jwt::claim_rules rules_;
  std::chrono::seconds ttl_;
};

/// Failed logins, counted per (user, address), per address and per user over a window; once
/// a count reaches its limit, logins on that key are refused (429) until its window ends.
/// Each table holds at most `max_entries` keys: when full, the entry whose window began first
/// makes room, so no sequence of requests grows it beyond the bound. Keys are user names (at
/// most max_user_name_length bytes) and addresses: with the defaults, under 12 MB in all.
class login_throttle {
 public:
  using clock = std::chrono::steady_clock;
  struct limits {
    unsigned per_user_address = 5;
    unsigned per_address = 20;
    unsigned per_user = 100;
    std::chrono::seconds window{60};
    std::size_t max_entries = 10'000;
  };

  explicit login_throttle(limits l) : limits_(l) {}

  /// How long this login must wait, or nothing if it may be tried.
  [[nodiscard]] std::optional<std::chrono::seconds> refused_for(std::string_view user,
                                                                std::string_view address) {
    std::lock_guard lock(mutex_);
    const auto now = clock::now();
    std::optional<clock::duration> wait;
    for (auto [table, key, limit] : keys(user, address)) {
      const auto it = table->find(key);
      if (it == table->end() || now - it->second.since >= limits_.window || it->second.failures < limit)
        continue;
      const auto left = it->second.since + limits_.window - now;
      wait = std::max(wait.value_or(left), left);
    }
    if (!wait) return std::nullopt;
    return std::max(std::chrono::seconds(1), std::chrono::ceil<std::chrono::seconds>(*wait));
  }

  void failed(std::string_view user, std::string_view address) {
    std::lock_guard lock(mutex_);
    const auto now = clock::now();
    for (auto [table, key, limit] : keys(user, address)) {
      auto it = table->find(key);
      if (it == table->end()) {
        if (table->size() >= limits_.max_entries) make_room(*table, now);
        it = table->emplace(std::move(key), entry{0, now}).first;
      } else if (now - it->second.since >= limits_.window) {
        it->second = entry{0, now};
      }
      ++it->second.failures;
    }
  }

  /// A correct password clears that user's count from that address, not the others.
  void succeeded(std::string_view user, std::string_view address) {
    std::lock_guard lock(mutex_);
    by_user_address_.erase(pair_key(user, address));
  }

  [[nodiscard]] const limits& configured() const noexcept { return limits_; }

 private:
  struct entry {
    unsigned failures;
    clock::time_point since;
  };
  using table = std::unordered_map<std::string, entry>;
  struct key_ref {
    table* t;
    std::string key;
    unsigned limit;
  };

  static std::string pair_key(std::string_view user, std::string_view address) {
    return std::string(address) + '\n' + std::string(user);  // a newline is in neither
  }

  std::array<key_ref, 3> keys(std::string_view user, std::string_view address) {
    return {key_ref{&by_user_address_, pair_key(user, address), limits_.per_user_address},
            key_ref{&by_address_, std::string(address), limits_.per_address},
            key_ref{&by_user_, std::string(user), limits_.per_user}};
  }

  void make_room(table& t, clock::time_point now) {
    std::erase_if(t, [&](const auto& kv) { return now - kv.second.since >= limits_.window; });
    if (t.size() < limits_.max_entries) return;
    t.erase(std::min_element(t.begin(), t.end(),
                             [](const auto& a, const auto& b) { return a.second.since < b.second.since; }));
  }

  limits limits_;
  std::mutex mutex_;
  table by_user_address_, by_address_, by_user_;
};

}  // namespace golden_path
