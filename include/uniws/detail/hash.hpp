// uniws/detail/hash.hpp - the registry's default hash and the bit tricks of split ordering.
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <type_traits>

namespace uniws::detail {

/// A 64-bit finaliser (splitmix64): integer user ids are often sequential, and split ordering
/// takes bucket bits from the low end of the hash, so every bit must be mixed.
constexpr std::uint64_t mix64(std::uint64_t x) noexcept {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
}

constexpr std::uint64_t reverse_bits(std::uint64_t x) noexcept {
  x = ((x >> 1) & 0x5555555555555555ULL) | ((x & 0x5555555555555555ULL) << 1);
  x = ((x >> 2) & 0x3333333333333333ULL) | ((x & 0x3333333333333333ULL) << 2);
  x = ((x >> 4) & 0x0f0f0f0f0f0f0f0fULL) | ((x & 0x0f0f0f0f0f0f0f0fULL) << 4);
  return __builtin_bswap64(x);  // std::byteswap is C++23
}

/// Default hash for registry keys: integers are mixed; strings hash as string_view, so a
/// string-keyed registry can be searched with a string_view or a literal without allocating.
template <class Key>
struct registry_hash {
  std::uint64_t operator()(const Key& k) const noexcept(noexcept(std::hash<Key>{}(k))) {
    return mix64(static_cast<std::uint64_t>(std::hash<Key>{}(k)));
  }
};

template <std::integral Key>
struct registry_hash<Key> {
  constexpr std::uint64_t operator()(Key k) const noexcept { return mix64(static_cast<std::uint64_t>(k)); }
};

template <class Char, class Traits, class Alloc>
struct registry_hash<std::basic_string<Char, Traits, Alloc>> {
  using is_transparent = void;
  std::uint64_t operator()(std::basic_string_view<Char, Traits> s) const noexcept {
    return mix64(static_cast<std::uint64_t>(std::hash<std::basic_string_view<Char, Traits>>{}(s)));
  }
};

}  // namespace uniws::detail
