// server_state.hpp - what every session of the server shares: options, users, tokens, the
// manager factory, and the server's own counters.
#pragma once

#include "auth.hpp"
#include "connection.hpp"
#include "options.hpp"
#include "origin_policy.hpp"
#include "server_stream.hpp"

#include <uniws/broker_variant.hpp>
#include <uniws/factory.hpp>
#include <uniws/redis/broker.hpp>
#include <uniws/redis/cluster_broker.hpp>
#include <uniws/stats.hpp>

#include <boost/asio.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <fstream>
#include <iterator>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>

namespace golden_path {

// With --redis or --redis-cluster, a user's events reach its connections on every node;
// without, one node.
using broker_type = uniws::broker_variant<uniws::redis::broker, uniws::redis::cluster_broker>;
using factory_type = uniws::manager_factory<connection, uniws::always_available, broker_type>;
using manager_ref = uniws::manager_ref<connection>;

// The server's own counters and gauges.
struct server_stats {
  // The fields: each is documented by its entry in fields() (kind and help, as /stats and
  // /metrics show them), so the API reference leaves them to that list.
  /// @cond stats_fields
  std::uint64_t tcp_connections = 0, queued_bytes = 0, connections_closed_stalled = 0,
                connections_closed_idle = 0, http_requests = 0, requests_refused = 0,
                connections_refused_server_full = 0, accept_failures = 0, session_errors = 0,
                auth_failures = 0, logins_throttled = 0, tls_handshakes_failed = 0, websocket_sessions = 0,
                upgrades_refused_user_full = 0, bad_frames = 0, rate_limited = 0, closed_rate_limited = 0,
                runs_cancelled = 0, replies_dropped = 0, origins_refused = 0;
  /// @endcond

  /// The list the fields are declared once in: /stats, /metrics and += walk it.
  static constexpr auto fields() noexcept {
    using s = server_stats;
    using f = uniws::stat_field<s>;
    using enum uniws::stat_kind;
    return std::array{
        f{"tcp_connections", gauge, "open TCP connections, HTTP and WebSocket", &s::tcp_connections},
        f{"queued_bytes", gauge, "bytes in every connection's send queue together (--max-queued-bytes)",
          &s::queued_bytes},
        f{"connections_closed_stalled", counter,
          "connections cut off: the peer took nothing for --stall-timeout", &s::connections_closed_stalled},
        f{"connections_closed_idle", counter,
          "WebSockets cut off: nothing read for --idle-timeout, or a closing handshake not finished in "
          "--handshake-timeout",
          &s::connections_closed_idle},
        f{"http_requests", counter, "HTTP requests read", &s::http_requests},
        f{"requests_refused", counter,
          "requests answered 400, 413 or 431 for their size or syntax, then closed", &s::requests_refused},
        f{"connections_refused_server_full", counter, "connections answered 503: --max-connections were open",
          &s::connections_refused_server_full},
        f{"accept_failures", counter,
          "accepts that failed (e.g. out of descriptors): the listener backed off", &s::accept_failures},
        f{"session_errors", counter,
          "sessions ended by an exception: that connection closed, the server went on", &s::session_errors},
        f{"auth_failures", counter, "logins and upgrades refused for their credentials", &s::auth_failures},
        f{"logins_throttled", counter, "logins refused with 429 after too many failures",
          &s::logins_throttled},
        f{"tls_handshakes_failed", counter, "TLS handshakes that failed or timed out",
          &s::tls_handshakes_failed},
        f{"websocket_sessions", counter, "WebSocket upgrades accepted", &s::websocket_sessions},
        f{"upgrades_refused_user_full", counter,
          "upgrades answered 429: the user had --max-connections-per-user", &s::upgrades_refused_user_full},
        f{"bad_frames", counter, "client frames answered with an error event", &s::bad_frames},
        f{"rate_limited", counter,
          "client frames ignored and answered rate_limited (--max-frames-per-second)", &s::rate_limited},
        f{"closed_rate_limited", counter, "connections closed 1008 after 10 s over --max-frames-per-second",
          &s::closed_rate_limited},
        f{"runs_cancelled", counter,
          "runs cancelled: no connection of the user joined their thread (--orphan-run-seconds)",
          &s::runs_cancelled},
        f{"replies_dropped", counter, "replies (errors, pongs) a full send queue dropped",
          &s::replies_dropped},
        f{"origins_refused", counter, "upgrades and CORS preflights refused for their Origin",
          &s::origins_refused},
    };
  }
  /// Field by field (summing over users, nodes or shards).
  constexpr server_stats& operator+=(const server_stats& o) noexcept { return uniws::add_stats(*this, o); }
};

// The JWT key the flags name: a public key file, a shared secret, or a random secret.
inline jwt::key make_key(const options& o) {
  if (o.jwt_public_key) {
    std::ifstream in(*o.jwt_public_key);
    if (!in) throw std::runtime_error("cannot read --jwt-public-key " + *o.jwt_public_key);
    const std::string pem((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    try {
      return jwt::key::public_pem(pem);
    } catch (const std::exception& e) {
      throw std::runtime_error(*o.jwt_public_key + ": " + e.what());
    }
  }
  return o.jwt_secret.empty() ? jwt::key::random_hs256() : jwt::key::hs256(o.jwt_secret);
}

inline broker_type make_broker(const options& o, net::any_io_executor ex) {
  uniws::redis::credentials login{.user = o.redis_user, .password = o.redis_password};
  uniws::redis::tls_options tls{
      .ca_file = o.redis_tls_ca, .cert_file = o.redis_tls_cert, .key_file = o.redis_tls_key};
  if (!o.redis_cluster.empty())
    return uniws::redis::cluster_broker(std::move(ex), {.seeds = o.redis_cluster,
                                                        .history_events = o.history_events,
                                                        .history_age = o.history_seconds,
                                                        .login = std::move(login),
                                                        .tls = std::move(tls)});
  return uniws::redis::broker(std::move(ex), {.host = o.redis_host,
                                              .port = o.redis_port,
                                              .history_events = o.history_events,
                                              .history_age = o.history_seconds,
                                              .login = std::move(login),
                                              .tls = std::move(tls)});
}

struct server_state {
  /// `queued` and `open_connections` outlive the io_context: a connection a pending handler
  /// holds gives its bytes and its slot back as the io_context is destroyed, after this state.
  server_state(options o, net::any_io_executor redis_executor, uniws::queue_budget& queued,
               std::atomic<std::size_t>& open_connections)
      : opts(std::move(o)),
        queued(queued),
        open_connections(open_connections),
        tls(opts.tls_cert ? std::optional<net::ssl::context>(make_tls_context(*opts.tls_cert, *opts.tls_key))
                          : std::nullopt),
        origins(opts.allowed_origins),
        users(opts.users_file ? user_directory::from_file(*opts.users_file) : user_directory::demo()),
        tokens(make_key(opts), {.audience = opts.jwt_audience, .issuer = opts.jwt_issuer}, opts.token_ttl),
        logins({.per_user_address = opts.login_failures_per_user_address,
                .per_address = opts.login_failures_per_address,
                .per_user = opts.login_failures_per_user,
                .window = opts.login_window}),
        factory(
            uniws::factory_options{.manager = {.max_thread_id_length = opts.max_thread_id_length,
                                               .max_threads_per_connection = opts.max_threads_per_connection,
                                               .max_connections = opts.max_connections_per_user,
                                               .max_runs = opts.max_runs_per_user,
                                               .history = {.max_events = opts.history_events,
                                                           .max_age = opts.history_seconds,
                                                           .max_bytes = opts.history_bytes}},
                                   .idle_ttl = opts.user_idle_ttl},
            uniws::always_available{}, make_broker(opts, std::move(redis_executor))) {}

  const options opts;
  uniws::queue_budget& queued;  // --max-queued-bytes: every connection's send queue draws on it
  // TCP connections from accept to close (connection_slot): --max-connections bounds it.
  std::atomic<std::size_t>& open_connections;
  std::optional<net::ssl::context> tls;  // --tls-cert: every connection speaks TLS
  const origin_policy origins;
  user_directory users;
  token_authority tokens;
  login_throttle logins;
  factory_type factory;
  uniws::atomic_stats<server_stats> stats;
  uniws::delivery_metrics metrics;  // recorded by every connection's write loop
  std::atomic<bool> draining{false};
  std::atomic<uniws::connection_id> next_connection_id{1};
  std::atomic<std::uint64_t> next_run_id{1};
  // WebSockets added to a manager and not yet finished: the drain waits for this to reach 0.
  std::atomic<std::size_t> open_websockets{0};

  uniws::asio::connection_options connection_options() {
    return {.queue = {.max_messages = opts.queue_messages,
                      .max_bytes = opts.queue_bytes,
                      .policy = opts.policy,
                      .slow_close_code = opts.slow_close_code,
                      .budget = &queued},
            .read_message_max = opts.max_message_size,
            .metrics = &metrics};
  }
  // Enforced by the connection sweeper (sweepers.hpp): --idle-timeout, with a ping at half of it;
  // a closing handshake gets --handshake-timeout.
  uniws::asio::connection_timeouts connection_timeouts() const {
    return {.idle = opts.idle_timeout, .closing = opts.handshake_timeout, .keep_alive_pings = true};
  }
};

}  // namespace golden_path
