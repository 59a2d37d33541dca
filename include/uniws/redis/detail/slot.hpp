// uniws/redis/detail/slot.hpp - Redis Cluster's key -> slot function (CRC16/XMODEM of the
// key's hash tag, modulo 16384) and the hash tag a user's keys and channel share.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace uniws::redis::detail {

inline constexpr std::uint16_t slot_count = 16384;

constexpr std::uint16_t crc16(std::string_view bytes) noexcept {
  std::uint16_t crc = 0;
  for (const char ch : bytes) {
    crc = static_cast<std::uint16_t>(crc ^ (static_cast<std::uint16_t>(static_cast<unsigned char>(ch)) << 8));
    for (int bit = 0; bit < 8; ++bit)
      crc = static_cast<std::uint16_t>((crc & 0x8000) ? (crc << 1) ^ 0x1021 : crc << 1);
  }
  return crc;
}

/// The slot Redis Cluster stores `key` in: only the part between the first `{` and the next
/// `}` counts, if it is not empty.
constexpr std::uint16_t key_slot(std::string_view key) noexcept {
  if (const auto open = key.find('{'); open != std::string_view::npos)
    if (const auto close = key.find('}', open + 1); close != std::string_view::npos && close != open + 1)
      key = key.substr(open + 1, close - open - 1);
  return static_cast<std::uint16_t>(crc16(key) & (slot_count - 1));
}

/// `{tag}` for `user`: the user id itself, unless braces in it would end the tag early (then
/// the id without its braces, and the whole id follows the tag so names stay distinct). Every
/// key and the channel of one user carry it, so they live on one shard.
inline std::string user_tag(std::string_view user) {
  if (user.find_first_of("{}") == std::string_view::npos && !user.empty())
    return "{" + std::string(user) + "}";
  std::string tag = "{_";
  for (const char c : user)
    if (c != '{' && c != '}') tag += c;
  return tag + "}" + std::string(user);
}

}  // namespace uniws::redis::detail
