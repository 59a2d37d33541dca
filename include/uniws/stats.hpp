// uniws/stats.hpp - counters declared once. A stats struct is one list of (name, kind, help)
// entries; its fields, its +=, its field table (what /stats JSON and Prometheus text are
// rendered from) and its atomic counterpart are all derived from that list.
//
//   #define MY_STATS(X) X(requests, counter, "requests answered") X(open, gauge, "open sockets")
//   struct my_stats { UNIWS_STATS(my_stats, MY_STATS) };
//   uniws::atomic_stats<my_stats> live;   live.add<&my_stats::requests>();
//   uniws::for_each_stat(live.snapshot(), [](const auto& field, std::uint64_t value) { ... });
//
// Adding a counter is one line in its list. A field written into the struct by hand, outside
// the list, fails to compile ("... is not in its list").
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

/// A struct declared with UNIWS_STATS.
template <class S>
concept stats_record = requires {
  { S::fields() };
  { S::fields()[0] } -> std::convertible_to<stat_field<S>>;
};

/// Calls fn(field, value) for each field of `s`, in its list's order.
template <stats_record S, class Fn>
constexpr void for_each_stat(const S& s, Fn&& fn) {
  for (const auto& f : S::fields()) fn(f, s.*f.member);
}

namespace detail {

template <class S>
constexpr S& add_stats(S& a, const S& b) noexcept {
  for (const auto& f : S::fields()) a.*f.member += b.*f.member;
  return a;
}

template <class S, std::uint64_t S::*Member>
consteval std::size_t stat_index() {
  constexpr auto fields = S::fields();
  for (std::size_t i = 0; i < fields.size(); ++i)
    if (fields[i].member == Member) return i;
  throw "not a field of this stats struct";  // not a constant expression: a compile error
}

}  // namespace detail

/// The atomic counterpart of a stats struct: what a component updates from any thread
/// (relaxed: a counter orders nothing) and snapshots into the plain struct.
template <stats_record S>
class atomic_stats {
 public:
  /// Adds to a counter (a gauge is a level: set() it).
  template <std::uint64_t S::*Member>
  void add(std::uint64_t n = 1) noexcept {
    constexpr std::size_t i = detail::stat_index<S, Member>();
    static_assert(S::fields()[i].kind == stat_kind::counter, "add() is for counters; set() a gauge");
    values_[i].fetch_add(n, std::memory_order_relaxed);
  }

  /// Sets the field (a gauge) to `v`.
  template <std::uint64_t S::*Member>
  void set(std::uint64_t v) noexcept {
    values_[detail::stat_index<S, Member>()].store(v, std::memory_order_relaxed);
  }

  /// The field's value now.
  template <std::uint64_t S::*Member>
  [[nodiscard]] std::uint64_t get() const noexcept {
    return values_[detail::stat_index<S, Member>()].load(std::memory_order_relaxed);
  }

  /// Every field, read now (each atomically, not all at one instant).
  [[nodiscard]] S snapshot() const noexcept {
    S s;
    for (std::size_t i = 0; i < values_.size(); ++i)
      s.*(S::fields()[i].member) = values_[i].load(std::memory_order_relaxed);
    return s;
  }

 private:
  std::array<std::atomic<std::uint64_t>, S::fields().size()> values_{};
};

}  // namespace uniws

// The struct body for one list: LIST(X) calls X(name, kind, help) once per field, kind being
// `counter` or `gauge`. Gives the fields (std::uint64_t, zero), fields() and +=.
#define UNIWS_STATS(Self, LIST)                                                            \
  LIST(UNIWS_DETAIL_STATS_FIELD)                                                           \
  static constexpr auto fields() noexcept {                                                \
    using self_type = Self;                                                                \
    constexpr std::array table{LIST(UNIWS_DETAIL_STATS_ENTRY)};                            \
    static_assert(sizeof(Self) == table.size() * sizeof(std::uint64_t),                    \
                  "a field of " #Self " is not in its list: declare it in the list only"); \
    return table;                                                                          \
  }                                                                                        \
  constexpr Self& operator+=(const Self& o) noexcept { return ::uniws::detail::add_stats(*this, o); }

#define UNIWS_DETAIL_STATS_FIELD(name, kind, help) std::uint64_t name = 0;
#define UNIWS_DETAIL_STATS_ENTRY(name, kind, help) \
  ::uniws::stat_field<self_type>{#name, ::uniws::stat_kind::kind, help, &self_type::name},
