// metrics.hpp - renders the counters for operators: GET /stats as one flat JSON object, every
// field of every stats list (factory, managers, broker, server) under its own name.
#pragma once

#include "server_state.hpp"

#include <uniws/stats.hpp>

#include <boost/json.hpp>

#include <string>
#include <string_view>

namespace golden_path {

template <uniws::stats_record S>
void append_stats(boost::json::object& out, const S& stats, std::string_view prefix = {}) {
  uniws::for_each_stat(stats, [&](const auto& field, std::uint64_t value) {
    out[std::string(prefix) + std::string(field.name)] = value;
  });
}

inline std::string stats_body(server_state& s) {
  const uniws::factory_stats f = s.factory.get_stats();
  boost::json::object out;
  append_stats(out, static_cast<const uniws::factory_counters&>(f));
  append_stats(out, f.managers);
  append_stats(out, s.factory.get_broker().stats(), "broker_");
  append_stats(out, s.stats.snapshot());
  return boost::json::serialize(out);
}

}  // namespace golden_path
