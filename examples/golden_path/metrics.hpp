// metrics.hpp - renders the counters for operators, every field of every stats list (factory,
// managers, broker, server) under its own name: GET /stats as one flat JSON object, GET
// /metrics as Prometheus text with the delivery-latency and queue-depth histograms.
#pragma once

#include "server_state.hpp"

#include <uniws/prometheus.hpp>
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

// The server's counters, and its gauges read where they live.
inline server_stats server_stats_now(const server_state& s) {
  server_stats now = s.stats.snapshot();
  now.tcp_connections = s.open_connections.load();
  now.queued_bytes = s.queued.bytes();
  return now;
}

inline std::string stats_body(server_state& s) {
  const uniws::factory_stats f = s.factory.get_stats();
  boost::json::object out;
  append_stats(out, static_cast<const uniws::factory_counters&>(f));
  append_stats(out, f.managers);
  append_stats(out, s.factory.get_broker().stats(), "broker_");
  if (const auto* cluster = s.factory.get_broker().get_if<uniws::redis::cluster_broker>()) {
    boost::json::object shards;
    for (const auto& [address, shard] : cluster->shards()) {
      boost::json::object one;
      append_stats(one, shard);
      shards[address] = std::move(one);
    }
    out["broker_shards"] = std::move(shards);
  }
  append_stats(out, server_stats_now(s));
  return boost::json::serialize(out);
}

inline std::string metrics_body(server_state& s) {
  const uniws::factory_stats f = s.factory.get_stats();
  std::string out;
  uniws::prometheus::text_writer w(out);
  w.stats(static_cast<const uniws::factory_counters&>(f));
  w.stats(f.managers);
  w.stats(s.factory.get_broker().stats(), "broker_");
  if (const auto* cluster = s.factory.get_broker().get_if<uniws::redis::cluster_broker>())
    w.stats_by("shard", cluster->shards(), "broker_shard_");
  w.stats(server_stats_now(s));
  w.histogram("delivery_seconds", "an event emitted -> its frame written to the socket, per delivery",
              s.metrics.delivery_seconds.read());
  w.histogram("queue_bytes", "bytes in a connection's send queue when a batch of it is written",
              s.metrics.queue_bytes.read());
  return out;
}

}  // namespace golden_path
