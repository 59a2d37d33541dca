// auth.hpp - the example's users and tokens: enough to make the golden path real (log in, then open
// a WebSocket with the token), no more. Tokens are 128 random bits and expire.
#pragma once

#include "sha256.hpp"

#include <array>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <fstream>
#include <mutex>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>

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
    // Compare every byte, whatever matches, so timing does not reveal a prefix.
    unsigned char diff = expected.size() == password.size() ? 0 : 1;
    for (std::size_t i = 0; i < password.size(); ++i)
      diff |= static_cast<unsigned char>(password[i] ^ expected[i % (expected.empty() ? 1 : expected.size())]);
    return diff == 0 && it != passwords_.end();
  }

 private:
  std::unordered_map<std::string, std::string> passwords_;
  std::string decoy_ = "decoy-password";
};

/// Tokens: 128 random bits remembered by this process, or, given a secret every node of a
/// cluster shares, signed and self-contained: "v1.<hex user>.<expiry, unix s>.<HMAC-SHA-256>",
/// so a token one node issued is accepted by all of them.
class token_store {
 public:
  using clock = std::chrono::steady_clock;
  explicit token_store(clock::duration ttl, std::string secret = {}) : ttl_(ttl), secret_(std::move(secret)) {}

  std::string issue(std::string user) {
    if (!secret_.empty()) return sign(user);
    std::lock_guard lock(mutex_);  // std::random_device is not thread-safe
    std::array<std::uint32_t, 4> bits{};
    for (auto& b : bits) b = random_();
    static constexpr char hex[] = "0123456789abcdef";
    std::string token;
    for (std::uint32_t b : bits)
      for (int shift = 28; shift >= 0; shift -= 4) token.push_back(hex[(b >> shift) & 0xF]);
    purge_expired_locked();
    tokens_[token] = entry{std::move(user), clock::now() + ttl_};
    return token;
  }

  /// The user a live token belongs to.
  [[nodiscard]] std::optional<std::string> user_for(std::string_view token) {
    if (!secret_.empty()) return verify(token);
    std::lock_guard lock(mutex_);
    const auto it = tokens_.find(std::string(token));
    if (it == tokens_.end()) return std::nullopt;
    if (clock::now() >= it->second.expires) {
      tokens_.erase(it);
      return std::nullopt;
    }
    return it->second.user;
  }

  [[nodiscard]] clock::duration ttl() const noexcept { return ttl_; }
  [[nodiscard]] bool is_signed() const noexcept { return !secret_.empty(); }

 private:
  static long long unix_now() {
    return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
  }

  std::string sign(const std::string& user) const {
    const long long expires = unix_now() + std::chrono::duration_cast<std::chrono::seconds>(ttl_).count();
    const std::string body = "v1." + to_hex(user) + "." + std::to_string(expires);
    return body + "." + to_hex(hmac_sha256(secret_, body));
  }

  std::optional<std::string> verify(std::string_view token) const {
    const auto last_dot = token.rfind('.');
    if (token.substr(0, 3) != "v1." || last_dot == std::string_view::npos || last_dot < 3) return std::nullopt;
    const std::string_view body = token.substr(0, last_dot), mac = token.substr(last_dot + 1);
    const std::string expected = to_hex(hmac_sha256(secret_, body));
    // Every byte compared, whatever matches, so timing does not reveal a prefix of the MAC.
    unsigned char diff = mac.size() == expected.size() ? 0 : 1;
    for (std::size_t i = 0; i < mac.size() && i < expected.size(); ++i)
      diff |= static_cast<unsigned char>(mac[i] ^ expected[i]);
    if (diff != 0) return std::nullopt;
    const std::string_view fields = body.substr(3);
    const auto dot = fields.find('.');
    if (dot == std::string_view::npos) return std::nullopt;
    const std::string_view hex_user = fields.substr(0, dot), expiry = fields.substr(dot + 1);
    long long expires = 0;
    const auto [end, ec] = std::from_chars(expiry.data(), expiry.data() + expiry.size(), expires);
    if (ec != std::errc() || end != expiry.data() + expiry.size() || unix_now() >= expires) return std::nullopt;
    if (hex_user.size() % 2 != 0) return std::nullopt;
    std::string user;
    for (std::size_t i = 0; i < hex_user.size(); i += 2) {
      unsigned byte = 0;
      const auto r = std::from_chars(hex_user.data() + i, hex_user.data() + i + 2, byte, 16);
      if (r.ec != std::errc() || r.ptr != hex_user.data() + i + 2) return std::nullopt;
      user.push_back(static_cast<char>(byte));
    }
    return user;
  }

  struct entry {
    std::string user;
    clock::time_point expires;
  };
  void purge_expired_locked() {
    const auto now = clock::now();
    for (auto it = tokens_.begin(); it != tokens_.end();) it = now >= it->second.expires ? tokens_.erase(it) : std::next(it);
  }

  clock::duration ttl_;
  std::string secret_;  // empty: random tokens remembered here
  std::mutex mutex_;
  std::random_device random_;  // the OS's CSPRNG on Linux (getrandom)
  std::unordered_map<std::string, entry> tokens_;
};

}  // namespace golden_path
