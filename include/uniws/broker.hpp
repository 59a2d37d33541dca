// uniws/broker.hpp - the broker concept: how the nodes of a cluster share one user's events.
//
// A user's connections may sit on several server processes; an agent may run on yet another.
// A node hands each event it emits to the broker, which stamps it with the user's next seq
// (one counter per user for the whole cluster, never below the floor the node passes) and
// delivers it, in seq order, to every node subscribed to that user - the publishing node
// included. So a node delivers its own events from the broker only, never twice, and every
// connection sees one seq order whichever node emitted.
//
// When publish() says no (the broker is down, or there is none), the manager delivers the
// event locally with the next local seq, and counts it: one node keeps working on its own.
//
// in_process_broker, the default, is "no cluster": publish() always says no, so a single node
// works exactly as it would without a broker, with no dependency and no cost.
#pragma once

#include <uniws/connection.hpp>
#include <uniws/events.hpp>
#include <uniws/history.hpp>
#include <uniws/message.hpp>
#include <uniws/stats.hpp>

#include <concepts>
#include <cstdint>
#include <functional>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

namespace uniws {

/// Where a broker delivers what it receives: an event for `user`'s `thread`, stamped `seq`.
using broker_receiver =
    std::function<void(std::string_view user, std::string_view thread, std::uint64_t seq, message)>;

/// What a cluster's store answers about a user's history when a connection joins a thread.
struct stored_history {
  bool answered = false;       ///< false: the store could not answer (down); the node answers alone
  history_epoch epoch;         ///< the history's epoch (created by the store if the user had none)
  std::uint64_t last_seq = 0;  ///< the user's last seq when the store answered
  bool complete = false;       ///< (resume only) the store holds every event after the asked seq
  std::vector<std::pair<std::uint64_t, message>> events;  ///< (resume only) the thread's events after it
};

/// Where a broker delivers a stored_history; called once, on any thread.
using history_receiver = std::function<void(stored_history)>;

/// A broker's counters and gauges.
struct broker_stats {
  // The fields: each is documented by its entry in fields() (kind and help, as /stats and
  // /metrics show them), so the API reference leaves them to that list.
  /// @cond stats_fields
  std::uint64_t connected = 0, refused = 0, published = 0, publish_failed = 0, received = 0, reconnects = 0,
                resubscribes = 0, slot_map_refreshes = 0, events_recovered = 0, gaps_unrecovered = 0,
                auth_failures = 0, tls_failures = 0;
  /// @endcond

  /// The list the fields are declared once in: /stats, /metrics and += walk it.
  static constexpr auto fields() noexcept {
    using s = broker_stats;
    using f = stat_field<s>;
    using enum stat_kind;
    return std::array{
        f{"connected", gauge, "1 while the broker is connected to its store", &s::connected},
        f{"refused", gauge,
          "1 while the store refuses this node's credentials or fails its certificate check (retried with "
          "backoff)",
          &s::refused},
        f{"published", counter, "events the broker's store accepted", &s::published},
        f{"publish_failed", counter, "events refused while down or lost in flight (delivered locally)",
          &s::publish_failed},
        f{"received", counter, "events delivered to this node from the users' channels", &s::received},
        f{"reconnects", counter, "connections to the store established after the first", &s::reconnects},
        f{"resubscribes", counter,
          "users' channels subscribed again after a connection, shard or slot came back or moved",
          &s::resubscribes},
        f{"slot_map_refreshes", counter, "Redis Cluster slot maps read (--redis-cluster)",
          &s::slot_map_refreshes},
        f{"events_recovered", counter,
          "events a node read back from the store: published while it was not subscribed",
          &s::events_recovered},
        f{"gaps_unrecovered", counter,
          "resubscriptions after which the store no longer held every missed event", &s::gaps_unrecovered},
        f{"auth_failures", counter,
          "connections whose credentials the store refused (AUTH answered an error)", &s::auth_failures},
        f{"tls_failures", counter,
          "TLS handshakes with the store that failed (a certificate from another CA or for another name)",
          &s::tls_failures},
    };
  }
  /// Field by field (summing over users, nodes or shards).
  constexpr broker_stats& operator+=(const broker_stats& o) noexcept { return add_stats(*this, o); }
};

template <class B>
concept broker = requires(B& b, const B& cb, std::string_view user, const agent_event& e, std::uint64_t floor,
                          broker_receiver r) {
  // Hands `e` to the cluster; false if it cannot now (nothing was sent, the caller delivers).
  { b.publish(user, e, floor) } -> std::same_as<bool>;
  // This node holds a connection of `user` / no longer holds any.
  b.subscribe(user);
  b.unsubscribe(user);
  // Where this node's deliveries go; set once, before any subscribe.
  b.set_receiver(std::move(r));
  // False: configured off at run time (no store given); managers then deliver locally.
  { cb.enabled() } -> std::convertible_to<bool>;
  { cb.stats() } -> std::same_as<broker_stats>;
  // Disconnects for good, e.g. when the server starts to drain.
  b.stop();
  // The history of `user` for a connection that joins `thread` (and resumes after `after`, if
  // given). Answers once, through the receiver, after every event published later than the
  // answer's last_seq is sure to reach this node's receiver (its subscription is live).
  b.read_history(user, user, std::optional<std::uint64_t>{}, history_receiver{});
};

/// No cluster: every event is delivered by the node that emits it.
struct in_process_broker {
  /// No cluster: always false, so the manager delivers locally.
  static constexpr bool publish(std::string_view, const agent_event&, std::uint64_t) noexcept {
    return false;
  }
  /// Nothing to subscribe to.
  static constexpr void subscribe(std::string_view) noexcept {}
  /// Nothing to unsubscribe from.
  static constexpr void unsubscribe(std::string_view) noexcept {}
  /// Nothing is ever received.
  static void set_receiver(const broker_receiver&) noexcept {}
  /// False: not a cluster.
  static constexpr bool enabled() noexcept { return false; }
  /// All zero.
  static constexpr broker_stats stats() noexcept { return {}; }
  /// Nothing to stop.
  static constexpr void stop() noexcept {}
  /// Never called (not enabled); answers with nothing.
  static void read_history(std::string_view, std::string_view, std::optional<std::uint64_t>,
                           const history_receiver& r) {
    r(stored_history{});
  }
};

static_assert(broker<in_process_broker>);

namespace detail {

/// What a manager sees of its factory's broker (type-erased: the manager is not a template
/// over the broker, so its type and API do not change with one).
class cluster_link {
 public:
  virtual bool publish(std::string_view user, const agent_event& e, std::uint64_t floor) = 0;
  virtual void presence(std::string_view user, bool has_connections) = 0;
  /// Asks the store for the history; the answer reaches the user's manager, if it still
  /// exists, as complete_join(id, thread, answer).
  virtual void read_history(std::string_view user, connection_id id, std::string_view thread,
                            std::optional<std::uint64_t> after) = 0;

 protected:
  ~cluster_link() = default;
};

}  // namespace detail
}  // namespace uniws
