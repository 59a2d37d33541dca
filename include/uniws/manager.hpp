// uniws/manager.hpp - unified_manager<Connection>: the one manager implementation. It holds
// one user's live connections and the threads each has joined, and fans messages out to them.
//
// Sends never take a lock and never allocate: the set of connections is an immutable snapshot
// (a "roster" of members), replaced by add/remove under a writers' mutex; each member's joined
// threads are an immutable set of their own, replaced by that connection's join/leave. So a
// change copies what it changes (the member list, or one connection's threads), never the
// user's whole roster. What a change replaces is reclaimed through detail::epoch_domain.
// A fan-out shares one message buffer across all connections.
//
// A manager is in one of two modes, fixed when the factory makes it: on its own
// (detail::standalone_mode: events are stamped and delivered where they are emitted) or in a
// cluster (detail::cluster_mode, uniws/detail/cluster_mode.hpp: events go through the factory's
// broker, and joins wait for its store's answer, the thread's events held back meanwhile).
#pragma once

#include <uniws/broker.hpp>
#include <uniws/concepts.hpp>
#include <uniws/connection.hpp>
#include <uniws/detail/cluster_mode.hpp>
#include <uniws/detail/epoch.hpp>
#include <uniws/events.hpp>
#include <uniws/history.hpp>
#include <uniws/message.hpp>
#include <uniws/stats.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace uniws {

/// Bounds and history of one user's manager.
struct manager_options {
  std::size_t max_thread_id_length = 128;        ///< longer thread ids are refused
  std::size_t max_threads_per_connection = 256;  ///< bounds what one client can make us store
  std::size_t max_connections = SIZE_MAX;        ///< of this user; add_connection refuses past it
  std::size_t max_runs = SIZE_MAX;               ///< of this user in flight; try_start_run refuses past it
  history_options history{};                     ///< what a resume can recover (uniws/history.hpp)
};

/// A manager's counters; sums over users with +=.
struct manager_stats {
  // The fields: each is documented by its entry in fields() (kind and help, as /stats and
  // /metrics show them), so the API reference leaves them to that list.
  /// @cond stats_fields
  std::uint64_t connections = 0, threads = 0, messages_sent = 0, bytes_sent = 0, messages_dropped = 0,
                connections_closed_slow = 0, sends_to_closed = 0, events_emitted = 0, runs_started = 0,
                unavailable_reports = 0, events_published = 0, publish_failures = 0, restamped = 0,
                history_events = 0, history_bytes = 0, events_replayed = 0, resumes_recovered = 0,
                resumes_not_recovered = 0, runs_in_flight = 0, connections_refused = 0, runs_refused = 0,
                joins_refused = 0;
  /// @endcond

  /// The list the fields are declared once in: /stats, /metrics and += walk it.
  static constexpr auto fields() noexcept {
    using s = manager_stats;
    using f = stat_field<s>;
    using enum stat_kind;
    return std::array{
        f{"connections", gauge, "open connections", &s::connections},
        f{"threads", gauge, "distinct thread ids joined by at least one connection", &s::threads},
        f{"messages_sent", counter, "deliveries a connection accepted (queued)", &s::messages_sent},
        f{"bytes_sent", counter, "bytes of the deliveries a connection accepted", &s::bytes_sent},
        f{"messages_dropped", counter, "deliveries that made a full queue drop a message",
          &s::messages_dropped},
        f{"connections_closed_slow", counter,
          "connections closed as slow consumers (full queue, close policy)", &s::connections_closed_slow},
        f{"sends_to_closed", counter, "deliveries refused by an already closed connection",
          &s::sends_to_closed},
        f{"events_emitted", counter, "agent events emitted", &s::events_emitted},
        f{"runs_started", counter, "agent runs started (agent_started events emitted)", &s::runs_started},
        f{"unavailable_reports", counter, "times a service probe said unavailable for a user",
          &s::unavailable_reports},
        f{"events_published", counter, "emitted events the cluster broker took", &s::events_published},
        f{"publish_failures", counter, "emitted events the cluster broker refused: delivered locally instead",
          &s::publish_failures},
        f{"restamped", counter, "broker events whose seq this node had passed, given the next local seq",
          &s::restamped},
        f{"history_events", gauge, "events held in the users' histories on this node", &s::history_events},
        f{"history_bytes", gauge, "bytes of the events held in the users' histories on this node",
          &s::history_bytes},
        f{"events_replayed", counter, "events replayed to connections that resumed", &s::events_replayed},
        f{"resumes_recovered", counter, "resumes answered with every missed event", &s::resumes_recovered},
        f{"resumes_not_recovered", counter,
          "resumes answered not recovered (history lost, exceeded or another epoch)",
          &s::resumes_not_recovered},
        f{"runs_in_flight", gauge, "agent runs started and not yet completed", &s::runs_in_flight},
        f{"connections_refused", counter, "connections refused: the user had max_connections",
          &s::connections_refused},
        f{"runs_refused", counter, "runs refused: the user had max_runs in flight", &s::runs_refused},
        f{"joins_refused", counter, "joins refused: the connection had joined max_threads_per_connection",
          &s::joins_refused},
    };
  }
  /// Field by field (summing over users, nodes or shards).
  constexpr manager_stats& operator+=(const manager_stats& o) noexcept { return add_stats(*this, o); }
};

/// What add_connection did.
enum class add_status : std::uint8_t {
  added,            ///< the manager holds it: fan-out reaches it from now on
  duplicate_id,     ///< a connection with its id is already here: nothing changed
  user_full,        ///< the user has manager_options::max_connections (counted connections_refused)
  null_connection,  ///< a null pointer: nothing to add
};

/// add_connection's answer: true only when the connection was added.
struct [[nodiscard(
    "a connection may be refused (duplicate id, user at max_connections): check the "
    "add_result")]] add_result {
  /// What happened.
  add_status status = add_status::null_connection;
  /// True when the connection was added.
  explicit operator bool() const noexcept { return status == add_status::added; }
};

template <connection Connection, service_probe Probe, broker Broker>
class manager_factory;
template <connection Connection>
class manager_ref;
template <class ManagerRef>
class run_lease;

/// One user's connections, the threads each joined, and the events streamed to them.
/// Every call is thread-safe; fan-out reads the roster without a lock (an epoch keeps what it
/// reads alive). Get one from manager_factory; never make one per request.
template <connection Connection>
class unified_manager {
 public:
  /// The connection type this manager holds.
  using connection_type = Connection;
  /// How connections are held: shared with their I/O.
  using connection_ptr = std::shared_ptr<Connection>;
  /// The clock of idle_since().
  using clock = std::chrono::steady_clock;

  /// A manager on its own, not clustered (tests; normally from a manager_factory).
  explicit unified_manager(manager_options options = {}) : options_(options) {}
  unified_manager(const unified_manager&) = delete;
  unified_manager& operator=(const unified_manager&) = delete;
  /// The last reference is gone, so no reader holds the roster or its members.
  ~unified_manager() {
    if (const roster* r = roster_.load(std::memory_order_acquire)) {
      for (member* m : r->members) delete m;
      delete r;
    }
  }

  /// Adds a connection, unless it is null, its id is already here, or the user has
  /// max_connections (counted: refuse the upgrade before, with has_room_for_connection()).
  add_result add_connection(connection_ptr c) {
    if (!c) return {add_status::null_connection};
    const connection_id id = c->id();
    std::lock_guard lock(writers_);
    const roster* old = roster_.load(std::memory_order_relaxed);
    if (old && old->find(id)) return {add_status::duplicate_id};
    if ((old ? old->members.size() : 0) >= options_.max_connections) {
      stats_.add<&manager_stats::connections_refused>();
      return {add_status::user_full};
    }
    auto m = std::make_unique<member>(std::move(c));
    auto next = std::make_unique<roster>();
    next->members.reserve((old ? old->members.size() : 0) + 1);  // the push_back below cannot throw
    if (old) next->members.assign(old->members.begin(), old->members.end());
    next->members.push_back(m.release());  // the roster owns it now
    publish(std::move(next), old);
    return {add_status::added};
  }

  /// Whether add_connection would take one more connection now (it may not, a moment later).
  [[nodiscard]] bool has_room_for_connection() const noexcept {
    return connection_count() < options_.max_connections;
  }

  /// Removes a connection; false (and harmless) if it is not here.
  bool remove_connection(connection_id id) {
    std::lock_guard lock(writers_);
    const roster* old = roster_.load(std::memory_order_relaxed);
    member* gone = old ? old->find(id) : nullptr;
    if (!gone) return false;
    std::unique_ptr<roster> next;
    if (old->members.size() > 1) {
      next = std::make_unique<roster>();
      next->members.reserve(old->members.size() - 1);
      for (member* m : old->members)
        if (m != gone) next->members.push_back(m);
    }
    publish(std::move(next), old);
    detail::epoch_domain::instance().retire(gone, &delete_member);
    return true;
  }

  /// Calls `fn(Connection&)` once for each connection the manager holds at the call, e.g. to
  /// close them all on shutdown or logout. `fn` may call any member of the manager.
  template <class Fn>
  void for_each_connection(Fn fn) const {
    detail::epoch_guard guard;  // the roster read here stays alive if `fn` changes it
    const roster* r = roster_.load(std::memory_order_acquire);
    if (!r) return;
    for (const member* m : r->members) fn(*m->conn);
  }

  /// The connection receives the thread's events from now on, and first the answer
  /// `joined` (see encode_joined): nothing of the thread reaches it before that answer.
  /// With `resume`, the thread's events after resume->after_seq are replayed first, in order,
  /// if the history still holds all of them in that epoch; else none is (`recovered:false`).
  /// No event is repeated or skipped across the replay/live boundary: emits wait for the
  /// join. Refused (nothing sent) if the connection is unknown, the thread id is empty or
  /// too long, or the connection has joined too many threads. In a cluster the answer comes
  /// from the broker's store (status pending); until it does, the thread's events for this
  /// connection are held back, then sent after it.
  join_result join_thread(connection_id id, std::string_view thread_id,
                          std::optional<resume_point> resume = std::nullopt) {
    if (!valid_thread_id(thread_id)) return {};
    std::unique_lock lock(emit_mutex_);
    if (detail::cluster_mode* cluster = clustered())
      return ask_store_to_join(*cluster, lock, id, thread_id, resume);
    const thread_join joined = add_to_thread(id, thread_id, 0);
    if (!joined) return refuse_join(joined.outcome);
    join_result r{join_status::joined, history_.epoch(), seq_, 0};
    if (resume) {
      r.status = join_status::not_recovered;
      std::optional<std::size_t> replayed;
      // Live events flow to a connection that had joined already: a replay would repeat them.
      if (joined.outcome == thread_join::added && resume->epoch == history_.epoch())
        replayed = history_.replay(resume->after_seq, seq_, thread_id, clock::now(),
                                   [&](const message& m) { (void)joined.conn->try_send(m); });
      if (replayed) {
        r.status = join_status::recovered;
        r.replayed = *replayed;
      }
      count_resume(r);
    }
    (void)joined.conn->try_send(encode_joined(thread_id, r, resume.has_value()));
    return r;
  }

  /// False if the connection is unknown or had not joined the thread.
  bool leave_thread(connection_id id, std::string_view thread_id) {
    std::lock_guard lock(writers_);
    const roster* r = roster_.load(std::memory_order_relaxed);
    member* m = r ? r->find(id) : nullptr;
    const thread_set* old = m ? m->threads.load(std::memory_order_relaxed) : nullptr;
    if (!old || !old->find(thread_id)) return false;
    std::unique_ptr<thread_set> next;
    if (old->threads.size() > 1) {
      next = std::make_unique<thread_set>();
      next->threads.reserve(old->threads.size() - 1);
      for (const joined_thread& j : old->threads)
        if (j.id != thread_id) next->threads.push_back(j);
    }
    m->threads.store(next.release(), std::memory_order_release);
    detail::epoch_domain::instance().retire(const_cast<thread_set*>(old), &delete_thread_set);
    return true;
  }

  /// Offers `m` to every connection of the user; returns how many accepted it.
  std::size_t send_to_user(const message& m) {
    return deliver(m, [](const member&) noexcept { return true; });
  }

  /// Offers `m` to every connection that joined `thread_id`; returns how many accepted it.
  std::size_t send_to_thread(std::string_view thread_id, const message& m) {
    return deliver(m, [thread_id](const member& mem) noexcept { return mem.joined(thread_id); });
  }

  /// Stamps the event with the user's next sequence number and delivers it to the
  /// connections that joined its thread. Events are delivered in seq order on every
  /// connection, also when several threads emit at once. Returns the seq; 0 when a cluster's
  /// broker took the event (it assigns the seq, and the event comes back through
  /// deliver_published on every node that holds the user, this one included).
  std::uint64_t emit(agent_event e) {
    std::lock_guard lock(emit_mutex_);  // one seq order, one delivery order (also into the broker)
    if (e.type == agent_event_type::agent_started) stats_.add<&manager_stats::runs_started>();
    if (detail::cluster_mode* cluster = clustered()) {
      if (cluster->publish(e, seq_)) {
        stats_.add<&manager_stats::events_published>();
        stats_.add<&manager_stats::events_emitted>();
        return 0;
      }
      stats_.add<&manager_stats::publish_failures>();
    }
    const std::uint64_t seq = ++seq_;
    const message m = encode_event(e, seq);
    deliver(m, [&](const member& mem) { return mem.joined(e.thread_id); });
    history_.push(seq, e.thread_id, m, m.emitted_at());
    if (detail::cluster_mode* cluster = clustered())  // the broker is down, but a join asked it before
      cluster->hold_back(e.thread_id, seq, m, options_.history.max_events);
    stats_.add<&manager_stats::events_emitted>();
    return seq;
  }

  /// The manager's counters and gauges, read now.
  [[nodiscard]] manager_stats get_stats() const {
    manager_stats s = stats_.snapshot();
    s.runs_in_flight = runs_in_flight();
    {
      std::lock_guard lock(emit_mutex_);
      s.history_events = history_.size();
      s.history_bytes = history_.bytes();
    }
    detail::epoch_guard guard;
    if (const roster* r = roster_.load(std::memory_order_acquire)) {
      s.connections = r->members.size();
      std::set<std::string_view> threads;
      for (const member* m : r->members)
        if (const thread_set* t = m->threads.load(std::memory_order_acquire))
          for (const joined_thread& j : t->threads) threads.insert(j.id);
      s.threads = threads.size();
    }
    return s;
  }

  /// Connections added and not yet removed.
  [[nodiscard]] std::size_t connection_count() const noexcept {
    return connection_count_.load(std::memory_order_acquire);
  }

  /// When the manager last had no connection (its creation, or its last removal).
  [[nodiscard]] clock::time_point idle_since() const noexcept {
    return clock::time_point(clock::duration(idle_since_.load(std::memory_order_acquire)));
  }

  /// Whether the services this user depends on answered the last probe.
  [[nodiscard]] bool available() const noexcept { return available_.load(std::memory_order_acquire); }
  /// Records whether the factory's service probe found the services up.
  void report_availability(bool available) noexcept {
    available_.store(available, std::memory_order_release);
    if (!available) stats_.add<&manager_stats::unavailable_reports>();
  }

  /// The options the manager was made with.
  [[nodiscard]] const manager_options& options() const noexcept { return options_; }

  /// Whether a connection of the user has joined `thread_id` now (e.g. whether a run on it still
  /// has a reader).
  [[nodiscard]] bool thread_has_connection(std::string_view thread_id) const {
    detail::epoch_guard guard;
    const roster* r = roster_.load(std::memory_order_acquire);
    if (!r) return false;
    return std::any_of(r->members.begin(), r->members.end(),
                       [&](const member* m) { return m->joined(thread_id); });
  }

  /// Runs started and not yet ended.
  [[nodiscard]] std::size_t runs_in_flight() const noexcept { return runs_.load(std::memory_order_relaxed); }

 private:
  // What only the library calls: the factory (broker deliveries, store answers), manager_ref
  // (a run begins) and run_lease (it ends). Private, so user code cannot count a run twice or
  // inject a delivery (tests/compile_fail/manager_*_from_user_code.cpp).
  template <connection, service_probe, broker>
  friend class manager_factory;
  template <connection>
  friend class manager_ref;
  template <class>
  friend class run_lease;

  /// An event the cluster's broker delivers, already stamped, to the connections that joined
  /// `thread_id`. Normally its seq is past the last one here. After a broker outage, when this
  /// node went on with local seqs the broker never saw, it may not be: then the event is
  /// re-stamped with this node's next seq (and counted), so a connection's seq never goes
  /// backwards and nothing is dropped. Returns how many connections accepted it.
  std::size_t deliver_published(std::string_view thread_id, std::uint64_t seq, const message& m) {
    std::lock_guard lock(emit_mutex_);
    message delivered = m;
    if (seq > seq_) {
      seq_ = seq;
    } else {
      stats_.add<&manager_stats::restamped>();
      delivered = restamp_event(m, ++seq_);
    }
    if (detail::cluster_mode* cluster = clustered())
      cluster->hold_back(thread_id, seq_, delivered, options_.history.max_events);
    const std::uint64_t seq_delivered = seq_;
    return deliver(delivered, [thread_id, seq_delivered](const member& mem) {
      return mem.receives(thread_id, seq_delivered);
    });
  }

  /// A run in flight: counted from begin_run until end_run (manager_ref's run sink calls both).
  /// With `limited`, false (counted, nothing begun) if max_runs are in flight.
  bool begin_run(bool limited) noexcept {
    std::size_t n = runs_.load(std::memory_order_relaxed);
    do {
      if (limited && n >= options_.max_runs) {
        stats_.add<&manager_stats::runs_refused>();
        return false;
      }
    } while (!runs_.compare_exchange_weak(n, n + 1, std::memory_order_relaxed));
    return true;
  }
  /// A run of begin_run ended (called by run_lease).
  void end_run() noexcept { runs_.fetch_sub(1, std::memory_order_relaxed); }

  /// A manager of `user` whose events go through a cluster's broker (see broker.hpp).
  unified_manager(manager_options options, detail::cluster_link& link, std::string user)
      : options_(options), mode_(std::in_place_type<detail::cluster_mode>, link, std::move(user)) {}

  struct joined_thread {
    std::string id;
    /// Events up to this seq reached the connection through its join answer (a cluster's
    /// store answers while the broker's deliveries are still in flight): not again live.
    std::uint64_t live_after = 0;
  };
  /// One connection's joined threads, sorted by id: immutable once published, replaced whole by
  /// that connection's join or leave.
  struct thread_set {
    std::vector<joined_thread> threads;
    /// Where `t` is, or would go.
    template <class Threads>
    static auto position(Threads& threads, std::string_view t) noexcept {
      return std::lower_bound(threads.begin(), threads.end(), t,
                              [](const joined_thread& j, std::string_view v) { return j.id < v; });
    }
    const joined_thread* find(std::string_view t) const noexcept {
      auto it = position(threads, t);
      return it != threads.end() && it->id == t ? &*it : nullptr;
    }
  };
  /// A connection: shared by every roster that holds it, freed (through the epoch) when removed.
  struct member {
    explicit member(connection_ptr c) noexcept : conn(std::move(c)) {}
    member(const member&) = delete;
    member& operator=(const member&) = delete;
    ~member() { delete threads.load(std::memory_order_relaxed); }

    const connection_ptr conn;
    std::atomic<const thread_set*> threads{nullptr};  ///< null: none joined; written under writers_

    bool joined(std::string_view t) const noexcept {
      const thread_set* s = threads.load(std::memory_order_acquire);
      return s && s->find(t);
    }
    /// A broker event: for the thread, and not one the connection's join answer covered.
    bool receives(std::string_view t, std::uint64_t seq) const noexcept {
      const thread_set* s = threads.load(std::memory_order_acquire);
      const joined_thread* j = s ? s->find(t) : nullptr;
      return j && seq > j->live_after;
    }
    std::size_t thread_count() const noexcept {
      const thread_set* s = threads.load(std::memory_order_acquire);
      return s ? s->threads.size() : 0;
    }
  };
  struct roster {
    std::vector<member*> members;  ///< never empty; the manager owns those of the newest roster
    member* find(connection_id id) const noexcept {
      for (member* m : members)
        if (m->conn->id() == id) return m;
      return nullptr;
    }
  };

  /// The cluster's part of this manager, or null when it is on its own.
  detail::cluster_mode* clustered() noexcept { return std::get_if<detail::cluster_mode>(&mode_); }

  /// A cluster's join: refused here if it must be (nothing asked), else held back and asked of
  /// the store; its answer comes through complete_join. Called under emit_mutex_ (`lock`),
  /// which it releases before asking.
  join_result ask_store_to_join(detail::cluster_mode& cluster, std::unique_lock<std::mutex>& lock,
                                connection_id id, std::string_view thread_id,
                                std::optional<resume_point> resume) {
    const std::optional<std::size_t> in_flight = cluster.joins_in_flight(id, thread_id);
    if (!in_flight) return refuse_join(join_status::refused);  // this very join is already asked
    {
      detail::epoch_guard guard;
      const roster* r = roster_.load(std::memory_order_acquire);
      const member* m = r ? r->find(id) : nullptr;
      if (!m) return refuse_join(join_status::refused);
      // Its joined threads and those it waits for stay within the bound.
      if (!m->joined(thread_id) && m->thread_count() + *in_flight >= options_.max_threads_per_connection)
        return refuse_join(join_status::too_many_threads);
    }
    cluster.ask_store(detail::pending_join{id, std::string(thread_id), resume, seq_, {}},
                      [&lock] { lock.unlock(); });
    return {join_status::pending, {}, 0, 0};
  }

  /// The store's answer to the pending join (id, thread), from the factory's broker receiver.
  void complete_join(connection_id id, std::string_view thread, stored_history answer) {
    std::lock_guard lock(emit_mutex_);
    detail::cluster_mode* cluster = clustered();
    std::optional<detail::pending_join> p = cluster ? cluster->answered(id, thread) : std::nullopt;
    if (!p) return;
    if (!answer.answered) {  // the store is down: this node answers with what it knows
      answer.epoch = history_.epoch();
      answer.last_seq = p->asked_at;  // what was held since goes out after the answer
      answer.complete = false;
      answer.events.clear();
    }
    // A store that lost its counter (restarted empty) answers a seq below what this node showed.
    answer.last_seq = std::max(answer.last_seq, p->asked_at);
    // The bound was checked when the join was asked; the connection may have left since.
    const thread_join joined = add_to_thread(id, thread, answer.last_seq);
    if (!joined) return;
    const bool added = joined.outcome == thread_join::added;  // else live events reach it already
    join_result r{join_status::joined, answer.epoch, answer.last_seq, 0};
    const bool resumed = p->resume.has_value();
    if (resumed) {
      r.status = join_status::not_recovered;
      if (added && !p->overflowed && answer.complete && p->resume->epoch == answer.epoch) {
        r.status = join_status::recovered;
        for (const auto& [seq, m] : answer.events)
          if (seq > p->resume->after_seq && seq <= answer.last_seq) {
            (void)joined.conn->try_send(m);
            ++r.replayed;
          }
      }
      count_resume(r);
    }
    (void)joined.conn->try_send(encode_joined(thread, r, resumed));
    if (!added) return;  // what was held went to it live as well
    for (const auto& [seq, m] : p->held)
      if (seq > answer.last_seq) (void)joined.conn->try_send(m);
  }

  void count_resume(const join_result& r) {
    if (r.status == join_status::recovered) {
      stats_.add<&manager_stats::resumes_recovered>();
      if (r.replayed) stats_.add<&manager_stats::events_replayed>(r.replayed);
    } else {
      stats_.add<&manager_stats::resumes_not_recovered>();
    }
  }

  join_result refuse_join(join_status why) {
    if (why == join_status::too_many_threads) stats_.add<&manager_stats::joins_refused>();
    return {why, {}, 0, 0};
  }

  /// What add_to_thread did, and the connection when it joined (now or before).
  struct thread_join {
    enum outcome_type { added, already_joined, unknown_connection, too_many_threads } outcome;
    connection_ptr conn;
    explicit operator bool() const noexcept { return outcome == added || outcome == already_joined; }
  };
  join_result refuse_join(thread_join::outcome_type why) {
    return refuse_join(why == thread_join::too_many_threads ? join_status::too_many_threads
                                                            : join_status::refused);
  }

  /// Joins the connection to the thread in the roster (unless it had already, or may not).
  thread_join add_to_thread(connection_id id, std::string_view thread_id, std::uint64_t live_after) {
    std::lock_guard lock(writers_);
    const roster* r = roster_.load(std::memory_order_relaxed);
    member* m = r ? r->find(id) : nullptr;
    if (!m) return {thread_join::unknown_connection, nullptr};
    const thread_set* old = m->threads.load(std::memory_order_relaxed);
    if (old && old->find(thread_id)) return {thread_join::already_joined, m->conn};  // nothing to publish
    const std::size_t n = old ? old->threads.size() : 0;
    if (n >= options_.max_threads_per_connection) return {thread_join::too_many_threads, nullptr};
    auto next = std::make_unique<thread_set>();
    next->threads.reserve(n + 1);
    if (old) next->threads.assign(old->threads.begin(), old->threads.end());
    next->threads.insert(thread_set::position(next->threads, thread_id),
                         joined_thread{std::string(thread_id), live_after});
    m->threads.store(next.release(), std::memory_order_release);
    if (old) detail::epoch_domain::instance().retire(const_cast<thread_set*>(old), &delete_thread_set);
    return {thread_join::added, m->conn};
  }

  bool valid_thread_id(std::string_view t) const noexcept {
    return !t.empty() && t.size() <= options_.max_thread_id_length;
  }

  /// Publishes the next member list (null: no connection) in place of `old`, which it retires.
  /// Called under writers_.
  void publish(std::unique_ptr<roster> next, const roster* old) {
    const std::size_t count = next ? next->members.size() : 0;
    const std::size_t before = old ? old->members.size() : 0;
    roster_.store(next.release(), std::memory_order_release);
    // The node subscribes to the user while it holds one of its connections (under writers_,
    // so presence changes reach the broker in order).
    if (detail::cluster_mode* cluster = clustered(); cluster && (before == 0) != (count == 0))
      cluster->presence(count != 0);
    if (count == 0) idle_since_.store(clock::now().time_since_epoch().count(), std::memory_order_release);
    connection_count_.store(count, std::memory_order_release);
    if (old) detail::epoch_domain::instance().retire(const_cast<roster*>(old), &delete_roster);
  }

  static void delete_roster(void* p) noexcept { delete static_cast<roster*>(p); }
  static void delete_member(void* p) noexcept { delete static_cast<member*>(p); }
  static void delete_thread_set(void* p) noexcept { delete static_cast<thread_set*>(p); }

  template <class Selected>
  std::size_t deliver(const message& m, Selected&& selected) {
    std::uint64_t accepted = 0, dropped = 0, slow = 0, closed = 0;
    {
      detail::epoch_guard guard;
      const roster* r = roster_.load(std::memory_order_acquire);
      if (!r) return 0;
      for (const member* mem : r->members) {
        if (!selected(*mem)) continue;
        switch (mem->conn->try_send(m)) {
          case send_result::queued:
            ++accepted;
            break;
          case send_result::dropped:
            ++accepted;
            ++dropped;
            break;
          case send_result::closed_slow:
            ++slow;
            break;
          case send_result::closed:
            ++closed;
            break;
        }
      }
    }
    // One update per fan-out, not per connection.
    if (accepted) {
      stats_.add<&manager_stats::messages_sent>(accepted);
      stats_.add<&manager_stats::bytes_sent>(accepted * m.size());
    }
    if (dropped) stats_.add<&manager_stats::messages_dropped>(dropped);
    if (slow) stats_.add<&manager_stats::connections_closed_slow>(slow);
    if (closed) stats_.add<&manager_stats::sends_to_closed>(closed);
    return static_cast<std::size_t>(accepted);
  }

  manager_options options_;
  std::atomic<const roster*> roster_{nullptr};  ///< null: no connections
  std::mutex writers_;                          ///< serialises roster and thread-set changes
  mutable std::mutex emit_mutex_;
  std::uint64_t seq_ = 0;                            ///< guarded by emit_mutex_
  detail::event_history history_{options_.history};  ///< guarded by emit_mutex_; unused in a cluster
  std::atomic<std::size_t> connection_count_{0};
  std::atomic<std::size_t> runs_{0};
  std::atomic<clock::rep> idle_since_{clock::now().time_since_epoch().count()};
  std::atomic<bool> available_{true};
  /// On its own, or in a cluster (its joins guarded by emit_mutex_); fixed at construction.
  std::variant<detail::standalone_mode, detail::cluster_mode> mode_;
  atomic_stats<manager_stats> stats_;  ///< the counters; the gauges are read from the roster
};

}  // namespace uniws
