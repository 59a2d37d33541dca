// uniws/stats.hpp - counters declared once. A stats struct holds plain std::uint64_t fields and
// one list of them as data, fields(): each entry's name, kind, help and member. Its +=, what
// /stats JSON and Prometheus text are rendered from, and its atomic counterpart all walk that
// list, so adding a counter is a field and its entry:
//
//   struct my_stats {
//     std::uint64_t requests = 0, open = 0;
//     static constexpr auto fields() noexcept {
//       using f = uniws::stat_field<my_stats>;
//       return std::array{f{"requests", uniws::stat_kind::counter, "requests answered", &my_stats::requests},
//                         f{"open", uniws::stat_kind::gauge, "open sockets", &my_stats::open}};
//     }
//     constexpr my_stats& operator+=(const my_stats& o) noexcept { return uniws::add_stats(*this, o); }
//   };
//   uniws::atomic_stats<my_stats> live;   live.add<&my_stats::requests>();
//   my_stats now = live.snapshot();  now.open = sockets.size();   // a gauge is read where it lives
//   uniws::for_each_stat(now, [](const auto& field, std::uint64_t value) { ... });
//
// A field left out of the list, or listed twice, fails to compile wherever the list is used
// ("... not in its fields() list").
#pragma once

#include <array>
#include <atomic>
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace uniws {

/// A counter only grows (Prometheus `counter`, `_total`); a gauge is a level that goes both ways.
enum class stat_kind : std::uint8_t { counter, gauge };

[[nodiscard]] constexpr std::string_view to_string(stat_kind k) noexcept {
  return k == stat_kind::counter ? "counter" : "gauge";
}

/// One field of a stats struct: its name, kind and help text, and where it lives.
template <class Stats>
struct stat_field {
  /// The field's name, as in /stats and after the prefix in /metrics.
  std::string_view name;
  /// Counter or gauge.
  stat_kind kind;
  /// One line for the metric's HELP.
  std::string_view help;
  /// The field in the struct.
  std::uint64_t Stats::*member;
};

namespace detail {

/// Whether fields() names each std::uint64_t member of S once and nothing else (the size says
/// whether a member is missing: the struct holds nothing but its fields).
template <class S>
consteval bool lists_every_field_once() {
  constexpr auto fields = S::fields();
  for (std::size_t i = 0; i < fields.size(); ++i)
    for (std::size_t j = i + 1; j < fields.size(); ++j)
      if (fields[i].member == fields[j].member || fields[i].name == fields[j].name) return false;
  return sizeof(S) == fields.size() * sizeof(std::uint64_t);
}

}  // namespace detail

/// A stats struct: std::uint64_t fields, each named once in its static fields() list.
template <class S>
concept stats_record = requires {
  { S::fields()[0] } -> std::convertible_to<stat_field<S>>;
};

/// Calls fn(field, value) for each field of `s`, in its list's order.
template <stats_record S, class Fn>
constexpr void for_each_stat(const S& s, Fn&& fn) {
  static_assert(detail::lists_every_field_once<S>(),
                "a field of this stats struct is not in its fields() list, or is listed twice");
  for (const auto& f : S::fields()) fn(f, s.*f.member);
}

/// `a += b` field by field: the body of a stats struct's operator+=.
template <stats_record S>
constexpr S& add_stats(S& a, const S& b) noexcept {
  static_assert(detail::lists_every_field_once<S>(),
                "a field of this stats struct is not in its fields() list, or is listed twice");
  for (const auto& f : S::fields()) a.*f.member += b.*f.member;
  return a;
}

namespace detail {

template <class S>
consteval std::size_t counter_count() {
  std::size_t n = 0;
  for (const auto& f : S::fields()) n += f.kind == stat_kind::counter ? 1 : 0;
  return n;
}

/// Whether `Member` is one of S's counters.
template <class S, std::uint64_t S::*Member>
consteval bool is_counter() {
  for (const auto& f : S::fields())
    if (f.member == Member) return f.kind == stat_kind::counter;
  return false;
}

/// Where the counter `Member` is among S's counters.
template <class S, std::uint64_t S::*Member>
consteval std::size_t counter_index() {
  std::size_t i = 0;
  for (const auto& f : S::fields()) {
    if (f.member == Member) return i;
    if (f.kind == stat_kind::counter) ++i;
  }
  return i;
}

}  // namespace detail

/// The atomic counterpart of a stats struct's counters: what a component adds to from any
/// thread (relaxed: a counter orders nothing) and snapshots into the plain struct. Gauges are
/// not kept here: the owner reads each where it lives and sets it in the snapshot.
template <stats_record S>
class atomic_stats {
  static_assert(detail::lists_every_field_once<S>(),
                "a field of this stats struct is not in its fields() list, or is listed twice");

 public:
  /// Adds to a counter (a gauge does not compile).
  template <std::uint64_t S::*Member>
  void add(std::uint64_t n = 1) noexcept {
    static_assert(detail::is_counter<S, Member>(),
                  "add() takes a counter of this stats struct; a gauge is read where it lives, not added to");
    values_[detail::counter_index<S, Member>()].fetch_add(n, std::memory_order_relaxed);
  }

  /// The counter's value now.
  template <std::uint64_t S::*Member>
  [[nodiscard]] std::uint64_t get() const noexcept {
    static_assert(detail::is_counter<S, Member>(), "get() takes a counter of this stats struct");
    return values_[detail::counter_index<S, Member>()].load(std::memory_order_relaxed);
  }

  /// Every counter, read now (each atomically, not all at one instant); the gauges are zero.
  [[nodiscard]] S snapshot() const noexcept {
    S s;
    std::size_t i = 0;
    for (const auto& f : S::fields())
      if (f.kind == stat_kind::counter) s.*f.member = values_[i++].load(std::memory_order_relaxed);
    return s;
  }

 private:
  std::array<std::atomic<std::uint64_t>, detail::counter_count<S>()> values_{};
};

}  // namespace uniws
