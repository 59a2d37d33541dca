// uniws/detail/hash.hpp - the registry's default hash.
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <type_traits>

namespace uniws::detail {

/// A 64-bit finaliser (splitmix64): integer user ids are often sequential, and the registry
/// takes its slot index from the low bits of the hash and a tag from the high ones, so every
/// bit must be mixed.
constexpr std::uint64_t mix64(std::uint64_t x) noexcept {
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ULL;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebULL;
  x ^= x >> 31;
  return x;
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
