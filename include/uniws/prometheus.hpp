// uniws/prometheus.hpp - renders stats in the Prometheus text exposition format 0.0.4, with
// no dependency: every field of a stats struct (uniws/stats.hpp) as a counter (`_total`) or a
// gauge, and uniws::histogram as `_bucket{le="..."}`, `_sum`, `_count`.
//
//   std::string body;
//   uniws::prometheus::text_writer out(body);             // names start with "uniws_"
//   out.stats(factory.get_stats().managers);               // uniws_messages_sent_total ...
//   out.histogram("delivery_seconds", "event emitted to written", latency.read());
//   // answer with Content-Type: uniws::prometheus::content_type
#pragma once

#include <uniws/histogram.hpp>
#include <uniws/stats.hpp>

#include <charconv>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace uniws::prometheus {

inline constexpr std::string_view content_type = "text/plain; version=0.0.4; charset=utf-8";

namespace detail {
inline std::string escape(std::string_view v, bool quotes) {
  std::string out;
  out.reserve(v.size());
  for (const char c : v) {
    if (c == '\\')
      out += "\\\\";
    else if (c == '\n')
      out += "\\n";
    else if (quotes && c == '"')
      out += "\\\"";
    else
      out.push_back(c);
  }
  return out;
}
}  // namespace detail

/// A label's value as the format wants it: backslash, double quote and newline escaped.
inline std::string escape_label_value(std::string_view v) { return detail::escape(v, true); }

/// HELP text: backslash and newline escaped (a double quote stays).
inline std::string escape_help(std::string_view v) { return detail::escape(v, false); }

/// A sample value: integers exactly, other numbers in the shortest form that reads back.
inline std::string format_value(double v) {
  char buf[32];
  const auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  return ec == std::errc() ? std::string(buf, end) : std::string("NaN");
}

using label = std::pair<std::string_view, std::string_view>;

/// Appends metric families to a string. Each name is given once per exposition.
class text_writer {
 public:
  /// Appends to `out`; every metric name gets `prefix`.
  explicit text_writer(std::string& out, std::string_view prefix = "uniws_") : out_(out), prefix_(prefix) {}

  /// A counter with its HELP and TYPE lines.
  void counter(std::string_view name, std::string_view help, std::uint64_t value,
               std::initializer_list<label> labels = {}) {
    const std::string full = std::string(prefix_) + std::string(name) + "_total";
    header(full, help, "counter");
    sample(full, labels, std::to_string(value));
  }

  /// A gauge with its HELP and TYPE lines.
  void gauge(std::string_view name, std::string_view help, std::uint64_t value,
             std::initializer_list<label> labels = {}) {
    const std::string full = std::string(prefix_) + std::string(name);
    header(full, help, "gauge");
    sample(full, labels, std::to_string(value));
  }

  /// Every field of `s`, under `name_prefix` + its name, as its kind says.
  template <stats_record S>
  void stats(const S& s, std::string_view name_prefix = {}) {
    for_each_stat(s, [&](const stat_field<S>& f, std::uint64_t value) {
      const std::string name = std::string(name_prefix) + std::string(f.name);
      if (f.kind == stat_kind::counter)
        counter(name, f.help, value);
      else
        gauge(name, f.help, value);
    });
  }

  /// Every field of `S` as one family with a sample per labelled record (e.g. one per shard).
  template <stats_record S>
  void stats_by(std::string_view label_name, const std::vector<std::pair<std::string, S>>& records,
                std::string_view name_prefix = {}) {
    if (records.empty()) return;
    for (const auto& f : S::fields()) {
      std::vector<std::pair<std::string, std::uint64_t>> samples;
      for (const auto& [label_value, r] : records) samples.emplace_back(label_value, r.*f.member);
      family(std::string(name_prefix) + std::string(f.name), f.help, f.kind, label_name, samples);
    }
  }

  /// One family with a sample per value of one label.
  void family(std::string_view name, std::string_view help, stat_kind kind, std::string_view label_name,
              const std::vector<std::pair<std::string, std::uint64_t>>& samples) {
    const std::string full =
        std::string(prefix_) + std::string(name) + (kind == stat_kind::counter ? "_total" : "");
    header(full, help, kind == stat_kind::counter ? "counter" : "gauge");
    for (const auto& [label_value, value] : samples)
      sample(full, {{label_name, label_value}}, std::to_string(value));
  }

  /// A histogram: cumulative buckets, _sum and _count.
  void histogram(std::string_view name, std::string_view help, const uniws::histogram::snapshot& h) {
    const std::string full = std::string(prefix_) + std::string(name);
    header(full, help, "histogram");
    for (std::size_t i = 0; i < h.upper_bounds.size(); ++i) {
      const std::string le = format_value(h.upper_bounds[i]);
      sample(full + "_bucket", {{"le", le}}, std::to_string(h.cumulative[i]));
    }
    sample(full + "_bucket", {{"le", "+Inf"}}, std::to_string(h.count));
    sample(full + "_sum", {}, format_value(h.sum));
    sample(full + "_count", {}, std::to_string(h.count));
  }

 private:
  void header(const std::string& name, std::string_view help, std::string_view type) {
    out_ += "# HELP " + name + " " + escape_help(help) + "\n";
    out_ += "# TYPE " + name + " " + std::string(type) + "\n";
  }

  void sample(const std::string& name, std::initializer_list<label> labels, const std::string& value) {
    out_ += name;
    if (labels.size() != 0) {
      out_.push_back('{');
      bool first = true;
      for (const auto& [key, v] : labels) {
        if (!first) out_.push_back(',');
        first = false;
        out_ += std::string(key) + "=\"" + escape_label_value(v) + "\"";
      }
      out_.push_back('}');
    }
    out_ += " " + value + "\n";
  }

  std::string& out_;
  std::string_view prefix_;
};

}  // namespace uniws::prometheus
