// options.hpp - the server's flags, declared once: one table gives --help, parsing and /config.
#pragma once

#include "origin_policy.hpp"

#include <uniws/connection.hpp>
#include <uniws/send_queue.hpp>

#include <boost/json.hpp>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <cstddef>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <iostream>
#include <optional>
#include <stdexcept>
#include <variant>
#include <string>
#include <string_view>
#include <vector>

namespace golden_path {

struct options {
  std::string address = "127.0.0.1";
  unsigned short port = 8080;
  std::optional<unsigned short> admin_port;  // /config, /stats, /metrics there only
  std::string admin_address = "127.0.0.1";
  std::vector<std::string> allowed_origins;  // pages from these may use the API (CORS) and the WebSocket
  unsigned threads = 1;
  std::optional<std::string> users_file;
  std::chrono::seconds token_ttl{3600};
  std::string jwt_secret;                        // HS256, shared by a cluster's nodes (docs/protocol.md §J)
  std::optional<std::string> jwt_public_key;     // PEM file: an identity provider's RS256 or ES256 key
  std::string jwt_audience, jwt_issuer;          // required aud / iss when set
  std::optional<std::string> tls_cert, tls_key;  // PEM files: HTTPS and WSS only (§T)
  unsigned login_failures_per_user_address = 5;  // failed logins in a window before 429
  unsigned login_failures_per_address = 20;
  unsigned login_failures_per_user = 100;
  std::chrono::seconds login_window{60};
  std::string redis_host;  // empty: no cluster (or a Redis Cluster, below)
  int redis_port = 6379;
  std::vector<std::string> redis_cluster;  // HOST:PORT of Redis Cluster nodes to read the slot map from
  std::string redis_user;                  // an ACL user; empty: Redis' default user
  std::optional<std::string> redis_password_file;           // read at start; or env UNIWS_REDIS_PASSWORD
  std::string redis_password;                               // never shown: not in /config, logs or errors
  std::string redis_tls_ca, redis_tls_cert, redis_tls_key;  // PEM files; a CA turns TLS to Redis on
  std::chrono::milliseconds agent_delay{50};
  bool agent_burst = false;  // with agent_delay 0: no yield between events
  std::size_t max_message_size = 64 * 1024;
  std::size_t queue_messages = 1024;
  std::size_t queue_bytes = 8 << 20;
  uniws::slow_consumer_policy policy = uniws::slow_consumer_policy::drop_oldest;
  uniws::close_code slow_close_code = uniws::close_code::try_again_later;
  std::chrono::seconds idle_timeout{60};
  std::chrono::seconds handshake_timeout{10};  // TCP accept to WebSocket open, and each HTTP request
  std::chrono::seconds user_idle_ttl{300};
  std::size_t history_events = 1024;  // per user, for resume (docs/protocol.md §R)
  std::chrono::seconds history_seconds{300};
  std::size_t history_bytes = std::size_t{1} << 20;
  std::chrono::milliseconds drain_timeout{5000};
  std::size_t max_thread_id_length = 128;
  int max_steps = 10'000;
  // docs/protocol.md §L: what one client, one user and everyone together may hold.
  std::size_t max_connections = 10'000;                   // TCP connections in all; past it 503
  std::size_t max_connections_per_user = 32;              // WebSockets of one user; past it 429
  unsigned max_frames_per_second = 50;                    // per connection, bursts of twice as many
  std::size_t max_runs_per_user = 4;                      // agent runs in flight
  std::size_t max_threads_per_connection = 64;            // threads one connection has joined
  std::chrono::seconds orphan_run{30};                    // a run nobody watches is cancelled after this
  std::size_t max_queued_bytes = std::size_t{256} << 20;  // all send queues together
  std::chrono::seconds stall_timeout{30};  // a write the peer does not take for this long: closed
};

// Bounds of one HTTP request (H11). Not flags: a client has no reason to need more.
inline constexpr std::size_t max_request_header_bytes = 8 * 1024;
inline constexpr std::size_t max_request_body_bytes = 16 * 1024;
// What the session buffers at most: a header block, a chunk-size line with its extensions, or
// a trailer must fit, so none of them can grow past it.
inline constexpr std::size_t max_request_buffer_bytes = 16 * 1024;

/// One flag: how it reads its value into `options`, and (if it is a limit or a setting a
/// client may want to know) how /config shows it.
struct flag {
  std::string_view name, value, help;
  std::function<void(options&, std::string_view)> set;
  std::string_view config_key = {};
  std::function<boost::json::value(const options&)> show = {};
};

// A setter refuses a value by throwing this; the message completes "--flag ...".
struct bad_value : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

template <class Int>
Int parse_number(std::string_view text, Int min, Int max) {
  Int v{};
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || v < min || v > max)
    throw bad_value("expects a number from " + std::to_string(min) + " to " + std::to_string(max));
  return v;
}

// A flag that is a number of `Unit`s in [min, max] stored in member `m`.
template <class Unit, auto Member>
auto number(long long min, long long max) {
  return [min, max](options& o, std::string_view v) {
    const long long n = parse_number<long long>(v, min, max);
    if constexpr (std::is_arithmetic_v<Unit>)
      o.*Member = static_cast<Unit>(n);
    else
      o.*Member = Unit(n);
  };
}

template <auto Member>
boost::json::value show_count(const options& o) {
  if constexpr (requires { (o.*Member).count(); })
    return (o.*Member).count();
  else
    return o.*Member;
}

inline const std::vector<flag>& flags() {
  using s = std::chrono::seconds;
  using ms = std::chrono::milliseconds;
  static const std::vector<flag> table = {
      {"--port", "N", "TCP port; 0 picks a free one", number<unsigned short, &options::port>(0, 65535)},
      {"--address", "A", "address to listen on", [](options& o, std::string_view v) { o.address = v; }},
      {"--admin-port", "N", "serve /config, /stats and /metrics here only, not on --port; 0 picks a free one",
       [](options& o, std::string_view v) { o.admin_port = parse_number<unsigned short>(v, 0, 65535); }},
      {"--admin-address", "A", "address of the admin port (default 127.0.0.1)",
       [](options& o, std::string_view v) { o.admin_address = v; }},
      {"--threads", "N", "event loops, one thread each", number<unsigned, &options::threads>(1, 256),
       "threads", show_count<&options::threads>},
      {"--allow-origin", "ORIGIN",
       "pages from this origin (scheme://host[:port]) may call the API; repeatable",
       [](options& o, std::string_view v) {
         if (!normalize_origin(v)) throw bad_value("expects an origin such as https://app.example.com");
         o.allowed_origins.emplace_back(v);
       },
       "allowed_origins",
       [](const options& o) -> boost::json::value {
         boost::json::array a;
         for (const auto& origin : o.allowed_origins) a.emplace_back(origin);
         return a;
       }},
      {"--users", "FILE", "one name:password a line (default: alice:alice-pw, bob:bob-pw)",
       [](options& o, std::string_view v) { o.users_file = std::string(v); }},
      {"--token-ttl", "SECONDS", "lifetime of a login's token", number<s, &options::token_ttl>(1, 86400 * 30),
       "token_ttl_s", show_count<&options::token_ttl>},
      {"--jwt-secret", "SECRET",
       "HS256 key (at least 16 bytes) /login signs with and /ws verifies; every node of a cluster given it "
       "accepts every node's tokens (or env UNIWS_JWT_SECRET). Neither key flag: a random key at start",
       [](options& o, std::string_view v) { o.jwt_secret = v; }},
      {"--token-secret", "SECRET",
       "the old name of --jwt-secret (env UNIWS_TOKEN_SECRET), kept for one release",
       [](options& o, std::string_view v) { o.jwt_secret = v; }},
      {"--jwt-public-key", "FILE",
       "PEM public key of an identity provider (RSA: RS256, EC P-256: ES256); /ws accepts its tokens, /login "
       "is off",
       [](options& o, std::string_view v) { o.jwt_public_key = std::string(v); }, "jwt_key",
       [](const options& o) -> boost::json::value {
         return o.jwt_public_key ? "public key" : o.jwt_secret.empty() ? "random" : "secret";
       }},
      {"--jwt-audience", "AUD", "tokens must name this audience (aud)",
       [](options& o, std::string_view v) { o.jwt_audience = v; }, "jwt_audience",
       [](const options& o) -> boost::json::value { return boost::json::string(o.jwt_audience); }},
      {"--jwt-issuer", "ISS", "tokens must come from this issuer (iss)",
       [](options& o, std::string_view v) { o.jwt_issuer = v; }, "jwt_issuer",
       [](const options& o) -> boost::json::value { return boost::json::string(o.jwt_issuer); }},
      {"--tls-cert", "FILE", "PEM certificate chain: serve HTTPS and WSS only (with --tls-key)",
       [](options& o, std::string_view v) { o.tls_cert = std::string(v); }, "tls",
       [](const options& o) -> boost::json::value { return o.tls_cert.has_value(); }},
      {"--tls-key", "FILE", "PEM private key of --tls-cert",
       [](options& o, std::string_view v) { o.tls_key = std::string(v); }},
      {"--login-failures-per-user-address", "N",
       "failed logins of one user from one address in a window before 429",
       number<unsigned, &options::login_failures_per_user_address>(1, 1 << 20),
       "login_failures_per_user_address", show_count<&options::login_failures_per_user_address>},
      {"--login-failures-per-address", "N", "failed logins from one address in a window before 429",
       number<unsigned, &options::login_failures_per_address>(1, 1 << 20), "login_failures_per_address",
       show_count<&options::login_failures_per_address>},
      {"--login-failures-per-user", "N",
       "failed logins of one user from all addresses in a window before 429",
       number<unsigned, &options::login_failures_per_user>(1, 1 << 20), "login_failures_per_user",
       show_count<&options::login_failures_per_user>},
      {"--login-window", "SECONDS", "the window failed logins are counted over",
       number<s, &options::login_window>(1, 86400), "login_window_s", show_count<&options::login_window>},
      {"--redis", "HOST:PORT", "join a cluster through this Redis",
       [](options& o, std::string_view v) {
         const auto colon = v.rfind(':');
         if (colon == std::string_view::npos || colon == 0) throw bad_value("expects HOST:PORT");
         o.redis_host = v.substr(0, colon);
         o.redis_port = parse_number<int>(v.substr(colon + 1), 1, 65535);
       },
       "cluster",
       [](const options& o) -> boost::json::value {
         return !o.redis_cluster.empty() ? "redis-cluster" : o.redis_host.empty() ? "none" : "redis";
       }},
      {"--redis-cluster", "HOST:PORT[,HOST:PORT...]",
       "join a cluster through a Redis Cluster (sharded pub/sub), found from these nodes",
       [](options& o, std::string_view v) {
         o.redis_cluster.clear();
         while (!v.empty()) {
           const auto comma = v.find(',');
           const std::string_view node = v.substr(0, comma);
           const auto colon = node.rfind(':');
           if (colon == std::string_view::npos || colon == 0)
             throw bad_value("expects HOST:PORT[,HOST:PORT...]");
           parse_number<int>(node.substr(colon + 1), 1, 65535);
           o.redis_cluster.emplace_back(node);
           v = comma == std::string_view::npos ? std::string_view() : v.substr(comma + 1);
         }
         if (o.redis_cluster.empty()) throw bad_value("expects HOST:PORT[,HOST:PORT...]");
       },
       "redis_cluster_nodes", [](const options& o) -> boost::json::value { return o.redis_cluster.size(); }},
      {"--redis-user", "NAME",
       "log in to Redis as this ACL user (with a password; default: the default user)",
       [](options& o, std::string_view v) { o.redis_user = v; }, "redis_user",
       [](const options& o) -> boost::json::value { return boost::json::string(o.redis_user); }},
      {"--redis-password-file", "FILE",
       "log in to Redis with the password in FILE (its first line), on every connection; or env "
       "UNIWS_REDIS_PASSWORD. Never on the command line",
       [](options& o, std::string_view v) { o.redis_password_file = std::string(v); }, "redis_auth",
       [](const options& o) -> boost::json::value { return o.redis_password.empty() ? "none" : "password"; }},
      {"--redis-tls-ca", "FILE",
       "connect to Redis over TLS, trusting the CA in this PEM file; the certificate must name the host or "
       "address connected to",
       [](options& o, std::string_view v) { o.redis_tls_ca = v; }, "redis_tls",
       [](const options& o) -> boost::json::value { return !o.redis_tls_ca.empty(); }},
      {"--redis-tls-cert", "FILE",
       "this node's PEM certificate, for a Redis that checks clients' (with --redis-tls-key)",
       [](options& o, std::string_view v) { o.redis_tls_cert = v; }},
      {"--redis-tls-key", "FILE", "the PEM key of --redis-tls-cert",
       [](options& o, std::string_view v) { o.redis_tls_key = v; }},
      {"--agent-delay-ms", "N",
       "the demo agent's pause between events (each due that long after the one before was due)",
       number<ms, &options::agent_delay>(0, 60000), "agent_delay_ms", show_count<&options::agent_delay>},
      {"--agent-burst", "0|1", "with --agent-delay-ms 0, 1 emits a run without yielding between events",
       number<bool, &options::agent_burst>(0, 1), "agent_burst", show_count<&options::agent_burst>},
      {"--max-message-size", "BYTES", "larger client frames close with 1009",
       number<std::size_t, &options::max_message_size>(64, 64 << 20), "max_message_size",
       show_count<&options::max_message_size>},
      {"--queue-messages", "N", "a connection's send queue, in messages",
       number<std::size_t, &options::queue_messages>(1, 1 << 20), "queue_max_messages",
       show_count<&options::queue_messages>},
      {"--queue-bytes", "N", "a connection's send queue, in bytes",
       number<std::size_t, &options::queue_bytes>(1024, 1LL << 32), "queue_max_bytes",
       show_count<&options::queue_bytes>},
      {"--slow-consumer", "drop-oldest|close", "what a full queue does",
       [](options& o, std::string_view v) {
         const auto p = uniws::parse_slow_consumer_policy(v);
         if (!p) throw bad_value("expects drop-oldest or close");
         o.policy = *p;
       },
       "slow_consumer_policy",
       [](const options& o) -> boost::json::value {
         return boost::json::string(uniws::to_string(o.policy));
       }},
      {"--idle-timeout", "SECONDS", "a silent WebSocket is closed after this",
       number<s, &options::idle_timeout>(1, 86400), "idle_timeout_s", show_count<&options::idle_timeout>},
      {"--handshake-timeout", "SECONDS", "TCP accept to WebSocket open, and each HTTP request",
       number<s, &options::handshake_timeout>(1, 3600), "handshake_timeout_s",
       show_count<&options::handshake_timeout>},
      {"--user-idle-ttl", "SECONDS", "a user without connections is forgotten after this",
       number<s, &options::user_idle_ttl>(0, 86400), "user_idle_ttl_s", show_count<&options::user_idle_ttl>},
      {"--history-events", "N", "events a user's history keeps for resume (0: none)",
       number<std::size_t, &options::history_events>(0, 1 << 20), "history_events",
       show_count<&options::history_events>},
      {"--history-seconds", "SECONDS", "how long an event stays in a user's history",
       number<s, &options::history_seconds>(1, 86400), "history_seconds",
       show_count<&options::history_seconds>},
      {"--history-bytes", "N", "bytes of events a user's history keeps at most",
       number<std::size_t, &options::history_bytes>(0, 1LL << 32), "history_max_bytes",
       show_count<&options::history_bytes>},
      {"--drain-timeout-ms", "N", "how long SIGTERM waits for queues to flush",
       number<ms, &options::drain_timeout>(0, 600000)},
      {"--max-connections", "N", "open TCP connections in all; past it new ones are answered 503",
       number<std::size_t, &options::max_connections>(1, 1 << 24), "max_connections",
       show_count<&options::max_connections>},
      {"--max-connections-per-user", "N", "open WebSockets of one user; past it the upgrade is answered 429",
       number<std::size_t, &options::max_connections_per_user>(1, 1 << 20), "max_connections_per_user",
       show_count<&options::max_connections_per_user>},
      {"--max-frames-per-second", "N",
       "client frames per second per connection (bursts of 2N); past it rate_limited",
       number<unsigned, &options::max_frames_per_second>(1, 1 << 20), "max_frames_per_second",
       show_count<&options::max_frames_per_second>},
      {"--max-runs-per-user", "N", "agent runs in flight per user; past it too_many_runs",
       number<std::size_t, &options::max_runs_per_user>(1, 1 << 20), "max_runs_per_user",
       show_count<&options::max_runs_per_user>},
      {"--max-threads-per-connection", "N", "threads one connection may join; past it too_many_threads",
       number<std::size_t, &options::max_threads_per_connection>(1, 1 << 16), "max_threads_per_connection",
       show_count<&options::max_threads_per_connection>},
      {"--orphan-run-seconds", "SECONDS",
       "a run whose thread no connection of its user has joined for this long is cancelled",
       number<s, &options::orphan_run>(1, 86400), "orphan_run_s", show_count<&options::orphan_run>},
      {"--max-queued-bytes", "N",
       "bytes queued for all connections together; past it the queues with a backlog "
       "are dropped-oldest or closed (--slow-consumer)",
       number<std::size_t, &options::max_queued_bytes>(1 << 16, 1LL << 40), "max_queued_bytes",
       show_count<&options::max_queued_bytes>},
      {"--stall-timeout", "SECONDS",
       "a connection whose peer takes none of a frame for this long is closed as slow",
       number<s, &options::stall_timeout>(1, 86400), "stall_timeout_s", show_count<&options::stall_timeout>},
  };
  return table;
}

/// Settings that are not flags but that a client may want to know.
inline boost::json::object fixed_config(const options& o) {
  return {{"slow_consumer_close_code", static_cast<int>(o.slow_close_code)},
          {"max_thread_id_length", o.max_thread_id_length},
          {"max_agent_steps", o.max_steps},
          {"max_request_header_bytes", max_request_header_bytes},
          {"max_request_body_bytes", max_request_body_bytes},
          {"max_request_buffer_bytes", max_request_buffer_bytes}};
}

/// GET /config: every flag with a config key, and the fixed settings.
inline boost::json::object config_json(const options& o) {
  boost::json::object out = fixed_config(o);
  for (const flag& f : flags())
    if (!f.config_key.empty()) out[f.config_key] = f.show(o);
  return out;
}

inline std::string usage_text() {
  std::string text = "usage: uniws-golden-path [flags]\n";
  for (const flag& f : flags())
    text += "  " + std::string(f.name) + " " + std::string(f.value) + "\n      " + std::string(f.help) + "\n";
  return text + "  --help\n";
}

// What the command line asks for instead of a server: main prints it and exits with `status`
// (0 for --help, 2 for a usage error).
struct command_line_answer {
  int status;
  std::string text;
};

inline command_line_answer usage_error(const std::string& problem) {
  return {2, "uniws-golden-path: " + problem + "\n" + usage_text()};
}

inline std::variant<options, command_line_answer> parse_options(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    const std::string_view name = argv[i];
    if (name == "--help" || name == "-h") return command_line_answer{0, usage_text()};
    const auto& table = flags();
    const auto it = std::find_if(table.begin(), table.end(), [&](const flag& f) { return f.name == name; });
    if (it == table.end()) return usage_error("unknown option " + std::string(name));
    if (i + 1 >= argc) return usage_error(std::string(name) + " needs a value");
    try {
      it->set(o, argv[++i]);
    } catch (const bad_value& e) {
      return usage_error(std::string(name) + " " + e.what());
    }
  }
  for (const char* name : {"UNIWS_JWT_SECRET", "UNIWS_TOKEN_SECRET"})
    if (const char* env = std::getenv(name); env && o.jwt_secret.empty()) o.jwt_secret = env;
  if (!o.jwt_secret.empty() && o.jwt_secret.size() < 16)
    return usage_error("--jwt-secret must be at least 16 bytes");
  if (!o.jwt_secret.empty() && o.jwt_public_key)
    return usage_error("give --jwt-secret or --jwt-public-key, not both");
  if (o.tls_cert.has_value() != o.tls_key.has_value())
    return usage_error("--tls-cert and --tls-key go together");
  if (!o.redis_host.empty() && !o.redis_cluster.empty())
    return usage_error("give --redis or --redis-cluster, not both");
  if (o.redis_password_file) {
    std::ifstream in(*o.redis_password_file);
    if (!in || !std::getline(in, o.redis_password) || o.redis_password.empty())
      return usage_error("--redis-password-file " + *o.redis_password_file +
                         ": cannot read a password from it");
    if (o.redis_password.ends_with('\r')) o.redis_password.pop_back();
  } else if (const char* env = std::getenv("UNIWS_REDIS_PASSWORD")) {
    o.redis_password = env;
  }
  if (o.redis_tls_cert.empty() != o.redis_tls_key.empty())
    return usage_error("--redis-tls-cert and --redis-tls-key go together");
  if (!o.redis_tls_cert.empty() && o.redis_tls_ca.empty())
    return usage_error("--redis-tls-cert needs --redis-tls-ca");
  if (!o.redis_user.empty() && o.redis_password.empty())
    return usage_error("--redis-user needs a password (--redis-password-file or UNIWS_REDIS_PASSWORD)");
  return o;
}

}  // namespace golden_path
