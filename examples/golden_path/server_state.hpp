// server_state.hpp - what every session of the server shares: options, users, tokens, the
// manager factory, and the server's own counters.
#pragma once

#include "auth.hpp"
#include "options.hpp"
#include "origin_policy.hpp"

#include <uniws/beast/connection.hpp>
#include <uniws/factory.hpp>
#include <uniws/redis/broker.hpp>
#include <uniws/stats.hpp>

#include <boost/asio.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace golden_path {

namespace net = boost::asio;
using tcp = net::ip::tcp;

// Each connection's handlers run on a strand (from a pool: see listener.hpp). Naming its type,
// rather than any_io_executor, keeps every operation an idle connection has pending smaller (the
// executor and its work guards are stored in each), and a type-erased strand is a heap block.
using strand = net::strand<net::io_context::executor_type>;
using socket_type = net::basic_stream_socket<tcp, strand>;
// The WebSocket runs straight on the socket: Beast's stream keeps its own handshake and idle
// timers, so basic_stream's three more timers (it serves the HTTP phase) are not needed.
using connection = uniws::beast::basic_websocket_connection<socket_type>;
// With --redis, a user's events reach its connections on every node; without, one node.
using factory_type = uniws::manager_factory<connection, uniws::always_available, uniws::redis::broker>;
using manager_ref = uniws::manager_ref<connection>;

// The server's own counters, declared once (uniws/stats.hpp): X(name, kind, help).
#define GOLDEN_PATH_SERVER_STATS(X)                                                      \
  X(http_requests, counter, "HTTP requests read")                                      \
  X(auth_failures, counter, "logins and upgrades refused for their credentials")       \
  X(websocket_sessions, counter, "WebSocket upgrades accepted")                        \
  X(bad_frames, counter, "client frames answered with an error event")                 \
  X(replies_dropped, counter, "replies (errors, pongs) a full send queue dropped")       \
  X(origins_refused, counter, "upgrades and CORS preflights refused for their Origin")

struct server_stats {
  UNIWS_STATS(server_stats, GOLDEN_PATH_SERVER_STATS)
};

struct server_state {
  server_state(options o, net::any_io_executor redis_executor)
      : opts(std::move(o)),
        origins(opts.allowed_origins),
        users(opts.users_file ? user_directory::from_file(*opts.users_file) : user_directory::demo()),
        tokens(opts.token_ttl, opts.token_secret),
        factory(uniws::factory_options{.manager = {.max_thread_id_length = opts.max_thread_id_length,
                                                   .history = {.max_events = opts.history_events,
                                                               .max_age = opts.history_seconds,
                                                               .max_bytes = opts.history_bytes}},
                                       .idle_ttl = opts.user_idle_ttl},
                uniws::always_available{},
                uniws::redis::broker(std::move(redis_executor), {.host = opts.redis_host,
                                                                 .port = opts.redis_port,
                                                                 .history_events = opts.history_events,
                                                                 .history_age = opts.history_seconds})) {}

  const options opts;
  const origin_policy origins;
  user_directory users;
  token_store tokens;
  factory_type factory;
  uniws::atomic_stats<server_stats> stats;
  uniws::delivery_metrics metrics;  // recorded by every connection's write loop
  std::atomic<bool> draining{false};
  std::atomic<uniws::connection_id> next_connection_id{1};
  std::atomic<std::uint64_t> next_run_id{1};
  // WebSockets added to a manager and not yet finished: the drain waits for this to reach 0.
  std::atomic<std::size_t> open_websockets{0};

  uniws::beast::connection_options connection_options() {
    return {.queue = {.max_messages = opts.queue_messages,
                      .max_bytes = opts.queue_bytes,
                      .policy = opts.policy,
                      .slow_close_code = opts.slow_close_code},
            .read_message_max = opts.max_message_size,
            .handshake_timeout = opts.handshake_timeout,
            .idle_timeout = opts.idle_timeout,
            .keep_alive_pings = true,
            .metrics = &metrics};
  }
};

}  // namespace golden_path
