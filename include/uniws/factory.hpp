// uniws/factory.hpp - manager_factory: the only way to get a user's manager.
//
//   auto mgr = factory.get_websocket_manager(ctx);                 // synchronous: the manager
//   auto mgr = co_await factory.get_websocket_manager_async(ctx);  // awaits the service probe
//
// The synchronous result is not awaitable: `co_await factory.get_websocket_manager(ctx)`
// does not compile, and the error names get_websocket_manager_async. The asynchronous one
// is a lazy uniws::task: dropping it unawaited is a [[nodiscard]] error under -Werror.
#pragma once

#include <uniws/broker.hpp>
#include <uniws/concepts.hpp>
#include <uniws/connection.hpp>
#include <uniws/detail/epoch.hpp>
#include <uniws/events.hpp>
#include <uniws/manager.hpp>
#include <uniws/registry.hpp>
#include <uniws/stats.hpp>
#include <uniws/task.hpp>

#include <atomic>
#include <chrono>
#include <coroutine>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace uniws {

/// A user context that is just a user id.
class basic_user_context {
 public:
  /// A context for the user `user_id`.
  explicit basic_user_context(std::string user_id) : user_id_(std::move(user_id)) {}
  /// The user this context names.
  [[nodiscard]] std::string_view user_id() const noexcept { return user_id_; }

 private:
  std::string user_id_;
};

/// The default probe: every service is always available.
struct always_available {
  /// Awaiting it completes at once with true.
  struct ready {
    /// Ready at once.
    constexpr bool await_ready() const noexcept { return true; }
    /// Never called: await_ready is true.
    constexpr void await_suspend(std::coroutine_handle<>) const noexcept {}
    /// The service is available.
    constexpr bool await_resume() const noexcept { return true; }
  };
  /// Always ready with true: nothing to probe.
  constexpr ready check() const noexcept { return {}; }
};

template <connection Connection, service_probe Probe, broker Broker>
class manager_factory;

// One text for every way of awaiting the synchronous getter: a macro only because C++20's
// static_assert takes a string literal, #undef'd after manager_ref, its one user.
#define UNIWS_DETAIL_SYNC_GETTER_AWAITED                                                                \
  "get_websocket_manager() is synchronous: it returns the manager itself, which cannot be co_awaited. " \
  "Write "                                                                                              \
  "`co_await factory.get_websocket_manager_async(ctx)` to await the service probe, or drop the co_await."

/// The sink of a run from manager_ref::start_run: the user's manager, held until the run ends,
/// and one of its runs in flight (released when the run ends, whichever way it ends).
template <class ManagerRef>
class run_lease {
 public:
  /// Holds `ref` (and one run in flight) until the lease ends.
  explicit run_lease(ManagerRef ref) noexcept : ref_(std::move(ref)) {}
  /// Takes over the lease; `other` holds nothing after.
  run_lease(run_lease&& other) noexcept : ref_(std::exchange(other.ref_, {})) {}
  /// Ends this lease's run, then takes over `other`'s.
  run_lease& operator=(run_lease&& other) noexcept {
    if (this != &other) {
      release();
      ref_ = std::exchange(other.ref_, {});
    }
    return *this;
  }
  ~run_lease() { release(); }

  /// Emits the event to the user's manager (an event_sink).
  std::uint64_t emit(agent_event e) const { return ref_.emit(std::move(e)); }
  /// The user's manager the run holds.
  [[nodiscard]] const ManagerRef& manager() const noexcept { return ref_; }

 private:
  void release() noexcept {
    if (ref_.valid()) ref_->end_run();
    ref_ = {};
  }
  ManagerRef ref_;
};

/// A counted reference to a user's manager: while one is alive the manager stays registered
/// (the idle sweep cannot remove it). Not awaitable, and converts to nothing.
template <connection Connection>
class manager_ref {
 public:
  /// The manager of one user.
  using manager_type = unified_manager<Connection>;

  manager_ref() noexcept = default;

  /// The manager; the reference must be valid().
  [[nodiscard]] manager_type* operator->() const noexcept { return handle_.get(); }
  /// The manager; the reference must be valid().
  [[nodiscard]] manager_type& operator*() const noexcept { return *handle_; }
  /// The manager, or null for a default-constructed reference.
  [[nodiscard]] manager_type* get() const noexcept { return handle_.get(); }
  /// Whether it refers to a manager.
  [[nodiscard]] bool valid() const noexcept { return static_cast<bool>(handle_); }
  /// The user whose manager this is.
  [[nodiscard]] std::string_view user_id() const noexcept { return handle_.key(); }
  /// Whether both refer to the same manager.
  friend bool operator==(const manager_ref& a, const manager_ref& b) noexcept {
    return a.handle_ == b.handle_;
  }

  /// Makes manager_ref an event_sink.
  std::uint64_t emit(agent_event e) const { return handle_->emit(std::move(e)); }

  /// Starts a run on one of the user's threads (emits agent_started). The run holds a
  /// reference, so the manager stays registered until the run ends, and counts as in flight
  /// until then (manager_options::max_runs; this one starts whatever the count).
  template <class Self = manager_ref>  // a template: manager_ref is complete where it is used
  [[nodiscard]] agent_run<run_lease<Self>> start_run(std::string thread_id, std::string run_id,
                                                     json_text payload = json_text::object()) const {
    handle_->begin_run(false);
    return agent_run<run_lease<Self>>(run_lease<Self>(Self(*this)), std::move(thread_id), std::move(run_id),
                                      std::move(payload));
  }

  /// start_run, unless the user has manager_options::max_runs in flight: then nothing (counted
  /// as runs_refused; no event is emitted).
  template <class Self = manager_ref>
  [[nodiscard]] std::optional<agent_run<run_lease<Self>>> try_start_run(
      std::string thread_id, std::string run_id, json_text payload = json_text::object()) const {
    if (!handle_->begin_run(true)) return std::nullopt;
    return std::optional<agent_run<run_lease<Self>>>(std::in_place, run_lease<Self>(Self(*this)),
                                                     std::move(thread_id), std::move(run_id),
                                                     std::move(payload));
  }

  /// The mistake this library exists to make impossible.
  template <class Self = manager_ref>
  void operator co_await() const {
    static_assert(detail::always_false<Self>, UNIWS_DETAIL_SYNC_GETTER_AWAITED);
  }

  /// The same mistake inside boost::asio::awaitable: its promise asks whether a co_awaited
  /// object is an asynchronous operation by calling it with a completion token (deducing the
  /// result), so that call is where the same message is given. Not callable otherwise.
  template <class CompletionToken>
  auto operator()(CompletionToken&&) const {
    static_assert(detail::always_false<CompletionToken>, UNIWS_DETAIL_SYNC_GETTER_AWAITED);
  }

 private:
  template <connection, service_probe, broker>
  friend class manager_factory;
  using handle_type = typename user_registry<std::string, manager_type>::handle;
  explicit manager_ref(handle_type h) noexcept : handle_(std::move(h)) {}
  handle_type handle_;
};

#undef UNIWS_DETAIL_SYNC_GETTER_AWAITED

/// How a manager_factory makes its managers.
struct factory_options {
  /// Options of every manager the factory makes.
  manager_options manager{};
  /// A manager with no connection for this long, and no reference held, is swept.
  std::chrono::steady_clock::duration idle_ttl = std::chrono::minutes(5);
};

/// The factory's own counters and gauges.
struct factory_counters {
  // The fields: each is documented by its entry in fields() (kind and help, as /stats and
  // /metrics show them), so the API reference leaves them to that list.
  /// @cond stats_fields
  std::uint64_t users = 0, probe_failures = 0, unrouted = 0, broker_errors = 0;
  /// @endcond

  /// The list the fields are declared once in: /stats, /metrics and += walk it.
  static constexpr auto fields() noexcept {
    using s = factory_counters;
    using f = stat_field<s>;
    using enum stat_kind;
    return std::array{
        f{"users", gauge, "users with a manager on this node", &s::users},
        f{"probe_failures", counter, "service probes that said unavailable or threw", &s::probe_failures},
        f{"unrouted", counter, "broker deliveries for a user with no manager on this node", &s::unrouted},
        f{"broker_errors", counter,
          "broker calls that threw (publish, subscribe, history read): handled as the broker being down",
          &s::broker_errors},
    };
  }
  /// Field by field (summing over users, nodes or shards).
  constexpr factory_counters& operator+=(const factory_counters& o) noexcept { return add_stats(*this, o); }
};

/// The factory's counters, and its managers' summed over users.
struct factory_stats : factory_counters {
  /// The managers' counters, summed over users.
  manager_stats managers{};
};

/// Owns the user registry and the options; one per server (no global state). With a Broker
/// other than in_process_broker, the managers' events go through it to every node of the
/// cluster (see broker.hpp); the managers' API is the same either way.
template <connection Connection, service_probe Probe = always_available, broker Broker = in_process_broker>
class manager_factory {
 public:
  /// The manager of one user.
  using manager_type = unified_manager<Connection>;
  /// What the getters return: a counted reference to a user's manager.
  using manager_ref_type = manager_ref<Connection>;
  /// Whether events go through a broker (false for in_process_broker).
  static constexpr bool clustered = !std::same_as<Broker, in_process_broker>;

  /// A factory with its own registry of managers, service probe and broker.
  explicit manager_factory(factory_options options = {}, Probe probe = Probe{}, Broker b = Broker{})
      : options_(std::move(options)), probe_(std::move(probe)), broker_(std::move(b)) {
    if constexpr (clustered)
      broker_.set_receiver(
          [this](std::string_view user, std::string_view thread, std::uint64_t seq, message m) {
            if (auto h = registry_.find(user))
              h->deliver_published(thread, seq, m);
            else
              stats_.add<&factory_counters::unrouted>();
          });
  }
  manager_factory(const manager_factory&) = delete;
  manager_factory& operator=(const manager_factory&) = delete;

  /// The user's manager, created on first use (exactly once, however many threads ask).
  template <user_context Context>
  [[nodiscard]] manager_ref_type get_websocket_manager(const Context& ctx) {
    const std::string_view user = ctx.user_id();
    if constexpr (clustered) {
      return manager_ref_type(registry_.get_or_create(user, [this, user] {
        if (broker_.enabled()) return manager_type(options_.manager, link_, std::string(user));
        return manager_type(options_.manager);
      }));
    } else {
      return manager_ref_type(
          registry_.get_or_create(user, [this] { return manager_type(options_.manager); }));
    }
  }

  /// Awaits the service probe, then gets or creates the user's manager. A probe that says
  /// unavailable or throws is counted and reported on the manager (available() == false),
  /// never thrown at the caller. The context is taken by value: the task is lazy. The
  /// factory must outlive the task.
  template <user_context Context>
  [[nodiscard(
      "get_websocket_manager_async returns a lazy task that does nothing until you co_await it")]] task<manager_ref_type>
  get_websocket_manager_async(Context ctx) {
    bool available = false;
    try {
      available = static_cast<bool>(co_await probe_.check());
    } catch (...) {
      available = false;
    }
    if (!available) stats_.add<&factory_counters::probe_failures>();
    manager_ref_type ref = get_websocket_manager(ctx);
    ref->report_availability(available);
    co_return ref;
  }

  /// Removes every manager that has had no connection for idle_ttl and that nobody holds a
  /// reference to. A thread that gets a manager and adds a connection at the same moment
  /// either keeps it registered or gets a fresh one: never a removed one.
  std::size_t sweep_idle(std::chrono::steady_clock::time_point now = std::chrono::steady_clock::now()) {
    const auto ttl = options_.idle_ttl;
    return registry_.sweep(
        [now, ttl](manager_type& m) { return m.connection_count() == 0 && now - m.idle_since() >= ttl; });
  }

  /// Calls fn(user_id, manager) for every registered manager.
  template <class Fn>
    requires std::invocable<Fn&, std::string_view, manager_type&>
  void for_each_manager(Fn fn) {
    registry_.for_each([&fn](const std::string& user, manager_type& m) { fn(std::string_view(user), m); });
  }

  /// Counters of the factory, its managers' totals and its broker's.
  [[nodiscard]] factory_stats get_stats() {
    factory_stats s;
    static_cast<factory_counters&>(s) = stats_.snapshot();
    s.users = registry_.size();
    registry_.for_each([&s](const std::string&, manager_type& m) { s.managers += m.get_stats(); });
    return s;
  }

  /// Users with a live manager.
  [[nodiscard]] std::size_t user_count() const noexcept { return registry_.size(); }
  /// The options the factory was made with.
  [[nodiscard]] const factory_options& options() const noexcept { return options_; }
  /// The broker, for its own statistics and control (stop, health).
  [[nodiscard]] Broker& get_broker() noexcept { return broker_; }

 private:
  struct link final : detail::cluster_link {
    explicit link(manager_factory& f) : f_(f), b_(f.broker_) {}
    bool publish(std::string_view user, const agent_event& e, std::uint64_t floor) override {
      try {
        return b_.publish(user, e, floor);
      } catch (...) {  // a broker that throws is a broker that is down: deliver locally
        f_.stats_.template add<&factory_counters::broker_errors>();
        return false;
      }
    }
    void presence(std::string_view user, bool has_connections) override {
      try {
        if (has_connections)
          b_.subscribe(user);
        else
          b_.unsubscribe(user);
      } catch (...) {
        // The broker resubscribes what it holds when it comes back; nothing to undo here.
        f_.stats_.template add<&factory_counters::broker_errors>();
      }
    }
    void read_history(std::string_view user, connection_id id, std::string_view thread,
                      std::optional<std::uint64_t> after) override {
      auto deliver = [&f = f_, user = std::string(user), id, thread = std::string(thread)](stored_history h) {
        if (auto m = f.registry_.find(user)) m->complete_join(id, thread, std::move(h));
      };
      try {
        b_.read_history(user, thread, after, deliver);
      } catch (...) {
        f_.stats_.template add<&factory_counters::broker_errors>();
        deliver(stored_history{});  // a broker that throws is down: the node answers alone
      }
    }
    manager_factory& f_;
    Broker& b_;
  };

  factory_options options_;
  Probe probe_;
  Broker broker_;
  link link_{*this};
  atomic_stats<factory_counters> stats_;
  /// Destroyed after the registry: what its managers retired (members, which hold connections)
  /// is reclaimed before the factory is gone, while the connections' executors still exist.
  struct reclaim_retired {
    ~reclaim_retired() { detail::epoch_domain::instance().barrier(); }
  } reclaim_retired_;
  /// Last: destroyed first, so no manager outlives the link and broker it points to.
  user_registry<std::string, manager_type> registry_;
};

}  // namespace uniws
