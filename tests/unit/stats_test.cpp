// uniws/stats.hpp: the stats structs derived from their one list.
#include <uniws/broker.hpp>
#include <uniws/factory.hpp>
#include <uniws/manager.hpp>
#include <uniws/stats.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <cstdint>
#include <set>
#include <string>
#include <string_view>

namespace {

// Every field of S, set through the table, summed by +=, read back by for_each_stat: a field
// missing from any of them, or two entries naming one member, shows as a wrong sum or name.
template <class S>
void check_derived(std::set<std::string_view> expected_names) {
  S a, b;
  const auto fields = S::fields();
  for (std::size_t i = 0; i < fields.size(); ++i) {
    a.*fields[i].member = i + 1;
    b.*fields[i].member = 100 * (i + 1);
  }
  a += b;
  std::size_t i = 0;
  std::set<std::string_view> names;
  uniws::for_each_stat(a, [&](const uniws::stat_field<S>& f, std::uint64_t value) {
    CHECK(f.name == fields[i].name);
    CHECK(value == 101 * (i + 1));
    CHECK_FALSE(f.help.empty());
    names.insert(f.name);
    ++i;
  });
  CHECK(i == fields.size());
  CHECK(names == expected_names);
}

}  // namespace

TEST_CASE("manager, factory and broker stats: fields, +=, names and help come from one list") {
  check_derived<uniws::manager_stats>({"connections",       "threads",
                                       "messages_sent",     "bytes_sent",
                                       "messages_dropped",  "connections_closed_slow",
                                       "sends_to_closed",   "events_emitted",
                                       "runs_started",      "unavailable_reports",
                                       "events_published",  "publish_failures",
                                       "restamped",         "history_events",
                                       "history_bytes",     "events_replayed",
                                       "resumes_recovered", "resumes_not_recovered",
                                       "runs_in_flight",    "connections_refused",
                                       "runs_refused",      "joins_refused"});
  check_derived<uniws::factory_counters>({"users", "probe_failures", "unrouted", "broker_errors"});
  check_derived<uniws::broker_stats>({"connected", "refused", "published", "publish_failed", "received",
                                      "reconnects", "resubscribes", "slot_map_refreshes", "events_recovered",
                                      "gaps_unrecovered", "auth_failures", "tls_failures"});
}

TEST_CASE("kinds: levels are gauges, everything that only grows is a counter") {
  for (const auto& f : uniws::manager_stats::fields()) {
    INFO(f.name);
    const bool level = f.name == "connections" || f.name == "threads" || f.name.starts_with("history_") ||
                       f.name == "runs_in_flight";
    CHECK(f.kind == (level ? uniws::stat_kind::gauge : uniws::stat_kind::counter));
  }
  CHECK(uniws::to_string(uniws::stat_kind::counter) == "counter");
  CHECK(uniws::to_string(uniws::stat_kind::gauge) == "gauge");
}

TEST_CASE("atomic_stats: each counter lands in its own field of the snapshot, and no gauge is kept") {
  uniws::atomic_stats<uniws::broker_stats> live;
  live.add<&uniws::broker_stats::published>(5);
  live.add<&uniws::broker_stats::received>();
  live.add<&uniws::broker_stats::auth_failures>(3);  // after two gauges and 8 counters
  const uniws::broker_stats s = live.snapshot();
  CHECK(s.published == 5);
  CHECK(s.received == 1);
  CHECK(s.auth_failures == 3);
  CHECK(s.gaps_unrecovered == 0);
  CHECK(s.connected == 0);  // a gauge: the broker reads it where it lives, into its stats()
  CHECK(s.publish_failed == 0);
  CHECK(s.reconnects == 0);
  CHECK(live.get<&uniws::broker_stats::published>() == 5);
  CHECK(live.get<&uniws::broker_stats::auth_failures>() == 3);
  // Counters only: one atomic per counter, none for the gauges.
  std::size_t counters = 0;
  for (const auto& f : uniws::broker_stats::fields()) counters += f.kind == uniws::stat_kind::counter ? 1 : 0;
  CHECK(sizeof(live) == counters * sizeof(std::atomic<std::uint64_t>));
}
