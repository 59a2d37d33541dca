// The example's users and tokens: enough to make the golden path real (log in, then open
// a WebSocket with the token), no more. Tokens are 128 random bits and expire.
#pragma once

#include <array>
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

class token_store {
 public:
  using clock = std::chrono::steady_clock;
  explicit token_store(clock::duration ttl) : ttl_(ttl) {}

  std::string issue(std::string user) {
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

 private:
  struct entry {
    std::string user;
    clock::time_point expires;
  };
  void purge_expired_locked() {
    const auto now = clock::now();
    for (auto it = tokens_.begin(); it != tokens_.end();) it = now >= it->second.expires ? tokens_.erase(it) : std::next(it);
  }

  clock::duration ttl_;
  std::mutex mutex_;
  std::random_device random_;  // the OS's CSPRNG on Linux (getrandom)
  std::unordered_map<std::string, entry> tokens_;
};

}  // namespace golden_path
