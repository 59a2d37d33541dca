// uniws-golden-path: the example server of ../../shared/PROTOCOL.md.
//
// Log in over HTTP, open a WebSocket with the token, run an agent, receive its five events.
// One uniws::manager_factory holds a manager per user; each WebSocket is a
// uniws::beast::websocket_connection added to its user's manager; the demo agent emits
// through a uniws::agent_run, so its events always follow the grammar.
#include "auth.hpp"
#include "protocol.hpp"

#include <uniws/beast/awaitable.hpp>
#include <uniws/beast/connection.hpp>
#include <uniws/factory.hpp>
#include <uniws/redis/broker.hpp>

#include <boost/asio.hpp>
#include <boost/beast.hpp>
#include <boost/json.hpp>

#include <array>
#include <atomic>
#include <charconv>
#include <chrono>
#include <csignal>
#include <sys/resource.h>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <iostream>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace json = boost::json;
using tcp = net::ip::tcp;
using namespace std::chrono_literals;

namespace {

// Each connection's handlers run on a strand (from a pool: see listen). Naming its type, rather than
// any_io_executor, keeps every operation an idle connection has pending smaller (the
// executor and its work guards are stored in each), and a type-erased strand is a heap block.
using strand = net::strand<net::io_context::executor_type>;
using socket_type = net::basic_stream_socket<tcp, strand>;
using http_stream = beast::basic_stream<tcp, strand>;
// The WebSocket runs straight on the socket: Beast's stream keeps its own handshake and idle
// timers, so basic_stream's three more timers (it serves the HTTP phase) are not needed.
using connection = uniws::beast::basic_websocket_connection<socket_type>;
// With --redis, a user's events reach its connections on every node; without, one node.
using factory_type = uniws::manager_factory<connection, uniws::always_available, uniws::redis::broker>;
using manager_ref = uniws::manager_ref<connection>;

struct config {
  std::string address = "127.0.0.1";
  unsigned short port = 8080;
  unsigned threads = 1;
  std::optional<std::string> users_file;
  std::chrono::seconds token_ttl{3600};
  std::string token_secret;  // shared by a cluster's nodes: tokens are signed, any node accepts them
  std::string redis_host;    // empty: no cluster
  int redis_port = 6379;
  std::chrono::milliseconds agent_delay{50};
  std::size_t max_message_size = 64 * 1024;
  std::size_t queue_messages = 1024;
  std::size_t queue_bytes = 8 << 20;
  uniws::slow_consumer_policy policy = uniws::slow_consumer_policy::drop_oldest;
  std::chrono::seconds idle_timeout{60};
  std::chrono::seconds handshake_timeout{10};  // TCP accept to WebSocket open, and each HTTP request
  std::chrono::seconds user_idle_ttl{300};
  std::chrono::milliseconds drain_timeout{5000};
  std::size_t max_thread_id_length = 128;
  int max_steps = 10'000;
};

[[noreturn]] void usage(const std::string& problem) {
  std::cerr << "uniws-golden-path: " << problem << "\n"
            << "usage: uniws-golden-path [--port N] [--address A] [--threads N] [--users FILE]\n"
               "         [--token-ttl SECONDS] [--agent-delay-ms N] [--max-message-size BYTES]\n"
               "         [--queue-messages N] [--queue-bytes N] [--slow-consumer drop-oldest|close]\n"
               "         [--idle-timeout SECONDS] [--handshake-timeout SECONDS] [--user-idle-ttl SECONDS]\n"
               "         [--drain-timeout-ms N] [--token-secret SECRET (or env UNIWS_TOKEN_SECRET)]\n"
               "         [--redis HOST:PORT]\n";
  std::exit(2);
}

template <class Int>
Int parse_number(std::string_view flag, std::string_view text, Int min, Int max) {
  Int v{};
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || v < min || v > max)
    usage(std::string(flag) + " expects a number from " + std::to_string(min) + " to " + std::to_string(max));
  return v;
}

config parse_args(int argc, char** argv) {
  config c;
  for (int i = 1; i < argc; ++i) {
    const std::string_view flag = argv[i];
    if (flag == "--help" || flag == "-h") usage("help");
    if (i + 1 >= argc) usage(std::string(flag) + " needs a value");
    const std::string_view v = argv[++i];
    if (flag == "--port") c.port = parse_number<unsigned short>(flag, v, 0, 65535);
    else if (flag == "--address") c.address = v;
    else if (flag == "--threads") c.threads = parse_number<unsigned>(flag, v, 1, 256);
    else if (flag == "--users") c.users_file = std::string(v);
    else if (flag == "--token-ttl") c.token_ttl = std::chrono::seconds(parse_number<long>(flag, v, 1, 86400 * 30));
    else if (flag == "--agent-delay-ms") c.agent_delay = std::chrono::milliseconds(parse_number<long>(flag, v, 0, 60000));
    else if (flag == "--max-message-size") c.max_message_size = parse_number<std::size_t>(flag, v, 64, 64 << 20);
    else if (flag == "--queue-messages") c.queue_messages = parse_number<std::size_t>(flag, v, 1, 1 << 20);
    else if (flag == "--queue-bytes") c.queue_bytes = parse_number<std::size_t>(flag, v, 1024, std::size_t{1} << 32);
    else if (flag == "--slow-consumer") {
      if (v == "drop-oldest") c.policy = uniws::slow_consumer_policy::drop_oldest;
      else if (v == "close") c.policy = uniws::slow_consumer_policy::close;
      else usage("--slow-consumer expects drop-oldest or close");
    } else if (flag == "--idle-timeout") c.idle_timeout = std::chrono::seconds(parse_number<long>(flag, v, 1, 86400));
    else if (flag == "--token-secret") c.token_secret = v;
    else if (flag == "--redis") {
      const auto colon = v.rfind(':');
      if (colon == std::string_view::npos || colon == 0) usage("--redis expects HOST:PORT");
      c.redis_host = v.substr(0, colon);
      c.redis_port = parse_number<int>(flag, v.substr(colon + 1), 1, 65535);
    }
    else if (flag == "--handshake-timeout") c.handshake_timeout = std::chrono::seconds(parse_number<long>(flag, v, 1, 3600));
    else if (flag == "--user-idle-ttl") c.user_idle_ttl = std::chrono::seconds(parse_number<long>(flag, v, 0, 86400));
    else if (flag == "--drain-timeout-ms") c.drain_timeout = std::chrono::milliseconds(parse_number<long>(flag, v, 0, 600000));
    else usage("unknown option " + std::string(flag));
  }
  if (c.token_secret.empty())
    if (const char* env = std::getenv("UNIWS_TOKEN_SECRET")) c.token_secret = env;
  if (!c.token_secret.empty() && c.token_secret.size() < 16) usage("--token-secret must be at least 16 bytes");
  return c;
}

// Everything the server shares between sessions.
struct server {
  server(config c, net::any_io_executor redis_executor)
      : cfg(std::move(c)),
        users(cfg.users_file ? golden_path::user_directory::from_file(*cfg.users_file)
                             : golden_path::user_directory::demo()),
        tokens(cfg.token_ttl, cfg.token_secret),
        factory(uniws::factory_options{.manager = {.max_thread_id_length = cfg.max_thread_id_length},
                                       .idle_ttl = cfg.user_idle_ttl},
                uniws::always_available{},
                uniws::redis::broker(std::move(redis_executor), {.host = cfg.redis_host, .port = cfg.redis_port})) {}

  config cfg;
  golden_path::user_directory users;
  golden_path::token_store tokens;
  factory_type factory;
  std::atomic<bool> draining{false};
  std::atomic<uniws::connection_id> next_connection_id{1};
  std::atomic<std::uint64_t> next_run_id{1};
  std::atomic<std::uint64_t> http_requests{0}, auth_failures{0}, websocket_sessions{0}, bad_frames{0};
  // Replies (errors, pongs) go straight to a connection, not through a manager: their drops are
  // counted here, so a client that floods faster than it reads loses nothing uncounted.
  std::atomic<std::uint64_t> replies_dropped{0};

  // WebSockets added to a manager and not yet finished: the drain waits for this to reach 0.
  std::atomic<std::size_t> open_websockets{0};

  uniws::beast::connection_options connection_options() const {
    return {.queue = {.max_messages = cfg.queue_messages,
                      .max_bytes = cfg.queue_bytes,
                      .policy = cfg.policy,
                      .slow_close_code = uniws::close_code::try_again_later},
            .read_message_max = cfg.max_message_size,
            .handshake_timeout = cfg.handshake_timeout,
            .idle_timeout = cfg.idle_timeout,
            .keep_alive_pings = true};
  }
};

// ---- HTTP ----

using request = http::request<http::string_body>;
using response = http::response<http::string_body>;

response json_response(const request& req, http::status status, std::string body) {
  response res{status, req.version()};
  res.set(http::field::server, "uniws-golden-path");
  res.set(http::field::content_type, "application/json");
  res.keep_alive(req.keep_alive());
  res.body() = std::move(body);
  res.prepare_payload();
  return res;
}

std::string error_body(std::string_view code, std::string_view message) {
  return json::serialize(json::object{{"error", json::object{{"code", code}, {"message", message}}}});
}

response handle_login(server& s, const request& req) {
  if (req.method() != http::verb::post)
    return json_response(req, http::status::method_not_allowed, error_body("method_not_allowed", "use POST"));
  const std::optional<golden_path::credentials> login = golden_path::parse_login(req.body());
  if (!login)
    return json_response(req, http::status::bad_request,
                         error_body("bad_request", "expected {\"user\":\"...\",\"password\":\"...\"}"));
  if (!s.users.check(login->user, login->password)) {
    s.auth_failures.fetch_add(1);
    return json_response(req, http::status::unauthorized, error_body("invalid_credentials", "unknown user or wrong password"));
  }
  const std::string token = s.tokens.issue(login->user);
  return json_response(req, http::status::ok, json::serialize(json::object{{"token", token}, {"user", login->user}}));
}

std::string stats_body(server& s) {
  const uniws::factory_stats f = s.factory.get_stats();
  return json::serialize(json::object{
      {"users", f.users},
      {"connections", f.managers.connections},
      {"threads", f.managers.threads},
      {"messages_sent", f.managers.messages_sent},
      {"bytes_sent", f.managers.bytes_sent},
      {"messages_dropped", f.managers.messages_dropped},
      {"closed_as_slow", f.managers.closed_as_slow},
      {"sends_to_closed", f.managers.sends_to_closed},
      {"events_emitted", f.managers.events_emitted},
      {"probe_failures", f.probe_failures},
      {"events_published", f.managers.events_published},
      {"publish_failures", f.managers.publish_failures},
      {"restamped", f.managers.restamped},
      {"broker_connected", s.factory.get_broker().stats().connected},
      {"broker_received", s.factory.get_broker().stats().received},
      {"broker_reconnects", s.factory.get_broker().stats().reconnects},
      {"http_requests", s.http_requests.load()},
      {"auth_failures", s.auth_failures.load()},
      {"websocket_sessions", s.websocket_sessions.load()},
      {"bad_frames", s.bad_frames.load()},
      {"replies_dropped", s.replies_dropped.load()},
  });
}

std::string config_body(const server& s) {
  const config& c = s.cfg;
  return json::serialize(json::object{
      {"max_message_size", c.max_message_size},
      {"queue_max_messages", c.queue_messages},
      {"queue_max_bytes", c.queue_bytes},
      {"slow_consumer_policy", c.policy == uniws::slow_consumer_policy::close ? "close" : "drop-oldest"},
      {"slow_consumer_close_code", 1013},
      {"idle_timeout_s", c.idle_timeout.count()},
      {"handshake_timeout_s", c.handshake_timeout.count()},
      {"token_ttl_s", c.token_ttl.count()},
      {"tokens", s.tokens.is_signed() ? "signed" : "local"},
      {"cluster", c.redis_host.empty() ? "none" : "redis"},
      {"user_idle_ttl_s", c.user_idle_ttl.count()},
      {"agent_delay_ms", c.agent_delay.count()},
      {"max_thread_id_length", c.max_thread_id_length},
      {"max_agent_steps", c.max_steps},
      {"threads", c.threads},
  });
}

response route(server& s, const request& req, std::string_view path) {
  if (path == "/login") return handle_login(s, req);
  if (path == "/health") {
    if (s.draining.load())
      return json_response(req, http::status::service_unavailable, R"({"status":"draining"})");
    return json_response(req, http::status::ok,
                         json::serialize(json::object{{"status", "ok"}, {"users", s.factory.user_count()}}));
  }
  if (path == "/config") return json_response(req, http::status::ok, config_body(s));
  if (path == "/stats") return json_response(req, http::status::ok, stats_body(s));
  return json_response(req, http::status::not_found, error_body("not_found", "no such resource"));
}

std::pair<std::string_view, std::string_view> split_target(std::string_view target) {
  const auto q = target.find('?');
  return q == std::string_view::npos ? std::pair{target, std::string_view{}}
                                     : std::pair{target.substr(0, q), target.substr(q + 1)};
}

std::string_view query_param(std::string_view query, std::string_view name) {
  while (!query.empty()) {
    const auto amp = query.find('&');
    const std::string_view pair = query.substr(0, amp);
    const auto eq = pair.find('=');
    if (eq != std::string_view::npos && pair.substr(0, eq) == name) return pair.substr(eq + 1);
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return {};
}

std::optional<std::string> authenticate(server& s, const request& req, std::string_view query) {
  std::string_view token = query_param(query, "token");
  if (const auto it = req.find(http::field::authorization); it != req.end()) {
    const std::string_view value = it->value();
    if (value.substr(0, 7) == "Bearer ") token = value.substr(7);
  }
  if (token.empty()) return std::nullopt;
  return s.tokens.user_for(token);
}

// ---- the demo agent ----

net::awaitable<void> pause(std::chrono::milliseconds d) {
  if (d.count() == 0) co_return;
  net::steady_timer timer(co_await net::this_coro::executor, d);
  co_await timer.async_wait(net::use_awaitable);
}

// Stands in for a real model: started, `steps` thoughts, one tool call, completed.
// Parameters by value: the coroutine outlives the caller's frame.
net::awaitable<void> demo_agent(manager_ref mgr, std::string thread_id, std::string run_id, std::string text,
                                int steps, std::size_t pad, std::chrono::milliseconds delay) {
  auto run = mgr.start_run(thread_id, run_id, uniws::json_text::object({{"message", uniws::json_text::string(text)}}));
  for (int i = 1; i <= steps; ++i) {
    co_await pause(delay);
    run.thinking(uniws::json_text::object({{"step", uniws::json_text::number(i)},
                                           {"text", uniws::json_text::string("thinking about: " + text)},
                                           {"pad", uniws::json_text::string(std::string(pad, '.'))}}));
  }
  co_await pause(delay);
  auto call = std::move(run).execute_tool("echo", uniws::json_text::object({{"input", uniws::json_text::string(text)}}));
  co_await pause(delay);
  auto after = std::move(call).finish(uniws::json_text::string(text));
  co_await pause(delay);
  std::move(after).complete("You said: " + text);
}

// ---- WebSocket ----

void reply(connection& c, server& s, uniws::message m) {
  if (c.try_send(std::move(m)) == uniws::send_result::dropped) s.replies_dropped.fetch_add(1);
}

void reply_error(connection& c, server& s, std::string_view code, std::string_view text) {
  s.bad_frames.fetch_add(1);
  reply(c, s, uniws::create_error_message(code, text));
}

// Acts on one text frame: parsing (protocol.hpp) has no side effects; this has them all.
void handle_frame(server& s, const manager_ref& mgr, connection& conn, std::string_view text) {
  golden_path::frame_limits limits;  // max_pad: protocol.hpp's default
  limits.max_thread_id_length = s.cfg.max_thread_id_length;
  limits.max_steps = s.cfg.max_steps;
  struct visitor {
    server& s;
    const manager_ref& mgr;
    connection& conn;
    void operator()(const golden_path::frame_error& e) const { reply_error(conn, s, e.code, e.message); }
    void operator()(const golden_path::ping_frame&) const { reply(conn, s, uniws::message::copy_of(R"({"type":"pong"})")); }
    void operator()(const golden_path::join_frame& f) const {
      if (!mgr->join_thread(conn.id(), f.thread_id)) reply_error(conn, s, "bad_request", "cannot join this thread");
    }
    void operator()(const golden_path::leave_frame& f) const { mgr->leave_thread(conn.id(), f.thread_id); }
    void operator()(const golden_path::run_agent_frame& f) const {
      if (!mgr->join_thread(conn.id(), f.thread_id)) return reply_error(conn, s, "bad_request", "cannot join this thread");
      const std::string run_id = "r-" + std::to_string(s.next_run_id.fetch_add(1));
      net::co_spawn(conn.stream().get_executor(),
                    demo_agent(mgr, f.thread_id, run_id, f.message, f.steps, f.pad, s.cfg.agent_delay), net::detached);
    }
  };
  std::visit(visitor{s, mgr, conn}, golden_path::parse_client_frame(text, limits));
}

// The read loop of an open WebSocket, in callbacks: an idle connection keeps one pending read
// and this object, not a coroutine frame. Reads go in 64-byte slices into an inline array;
// a message longer than a slice is gathered in `message_`, which is released once handled,
// so an idle connection holds no read buffer of its own. --max-message-size bounds a message
// (Beast closes with 1009 beyond it).
class websocket_reader {
 public:
  websocket_reader(server& s, std::shared_ptr<connection> conn, manager_ref mgr)
      : s_(s), conn_(std::move(conn)), mgr_(std::move(mgr)) {}

  // The pending read's handler owns the reader (no enable_shared_from_this: 16 bytes less).
  static void read_next(std::shared_ptr<websocket_reader> self) {
    auto& ws = self->conn_->stream();
    const net::mutable_buffer slice = net::buffer(self->slice_);  // before `self` is moved
    ws.async_read_some(slice, [self = std::move(self)](beast::error_code ec, std::size_t n) mutable {
      websocket_reader& r = *self;
      if (r.on_read(ec, n)) read_next(std::move(self));
    });
  }

 private:
  // False once the connection has ended.
  bool on_read(beast::error_code ec, std::size_t n) {
    if (ec) {  // closed by either side, timed out, or a frame over the limit
      finish();
      return false;
    }
    const std::string_view part(slice_.data(), n);
    if (!conn_->stream().is_message_done()) {
      if (!message_) message_ = std::make_unique<std::string>();
      message_->append(part);
    } else if (!message_) {
      handle(part);  // the whole message came in one slice: no copy
    } else {
      message_->append(part);
      handle(*message_);
      message_.reset();
    }
    return true;
  }

  void handle(std::string_view text) {
    if (!conn_->stream().got_text()) {
      reply_error(*conn_, s_, "unsupported", "binary frames are not supported; send JSON text");
    } else {
      handle_frame(s_, mgr_, *conn_, text);
    }
  }

  void finish() {
    conn_->mark_closed();
    mgr_->remove_connection(conn_->id());
    s_.open_websockets.fetch_sub(1);
  }

  server& s_;
  const std::shared_ptr<connection> conn_;
  const manager_ref mgr_;
  std::unique_ptr<std::string> message_;  // only while a message spans slices
  std::array<char, 64> slice_{};
};

// Opens the WebSocket, gets the user's manager, then hands the connection to its reader: this
// coroutine (and the HTTP session's) ends there, so an open connection keeps no frame.
net::awaitable<void> websocket_session(server& s, std::shared_ptr<connection> conn, request req, std::string user) {
  auto& ws = conn->stream();
  ws.set_option(websocket::stream_base::decorator(
      [](websocket::response_type& res) { res.set(http::field::server, "uniws-golden-path"); }));
  auto [accept_ec] = co_await ws.async_accept(req, net::as_tuple(net::use_awaitable));
  req = {};
  if (accept_ec) co_return;
  s.websocket_sessions.fetch_add(1);

  // The golden path: the session awaits its user's manager through the async factory.
  manager_ref mgr = co_await uniws::beast::await_task(s.factory.get_websocket_manager_async(uniws::basic_user_context(user)));
  mgr->add_connection(conn);
  s.open_websockets.fetch_add(1);
  if (s.draining.load()) conn->close(uniws::close_code::going_away);
  websocket_reader::read_next(std::make_shared<websocket_reader>(s, std::move(conn), std::move(mgr)));
}

// ---- HTTP session: requests until an upgrade to /ws ----

net::awaitable<void> http_session(server& s, http_stream stream) {
  beast::flat_buffer buffer;
  for (;;) {
    http::request_parser<http::string_body> parser;
    parser.body_limit(16 * 1024);
    stream.expires_after(s.cfg.handshake_timeout);  // a peer that sends nothing is cut off
    auto [ec, n] = co_await http::async_read(stream, buffer, parser, net::as_tuple(net::use_awaitable));
    if (ec) co_return;
    request req = parser.release();
    s.http_requests.fetch_add(1);
    const auto [path, query] = split_target(req.target());

    if (path == "/ws") {
      const std::optional<std::string> user = authenticate(s, req, query);
      if (!user || !websocket::is_upgrade(req) || s.draining.load()) {
        if (!user) s.auth_failures.fetch_add(1);
        response res = !user ? json_response(req, http::status::unauthorized,
                                             error_body("unauthorized", "a valid token is required"))
                       : s.draining.load()
                           ? json_response(req, http::status::service_unavailable, error_body("draining", "shutting down"))
                           : json_response(req, http::status::bad_request,
                                           error_body("bad_request", "expected a WebSocket upgrade"));
        res.keep_alive(false);
        co_await http::async_write(stream, res, net::as_tuple(net::use_awaitable));
        stream.socket().shutdown(socket_type::shutdown_send);
        co_return;
      }
      stream.expires_never();  // the WebSocket's own timeouts take over
      auto conn = connection::create(s.next_connection_id.fetch_add(1), stream.release_socket(), s.connection_options());
      buffer.clear();  // the request is parsed: give its bytes back for the WebSocket's lifetime
      buffer.shrink_to_fit();
      co_await websocket_session(s, std::move(conn), std::move(req), *user);
      co_return;
    }

    response res = route(s, req, path);
    const bool keep_alive = res.keep_alive();
    auto [wec, wn] = co_await http::async_write(stream, res, net::as_tuple(net::use_awaitable));
    if (wec || !keep_alive) {
      beast::error_code ignored;
      stream.socket().shutdown(socket_type::shutdown_send, ignored);
      co_return;
    }
  }
}

net::awaitable<void> listen(server& s, tcp::acceptor& acceptor, net::io_context& io) {
  // Connections take their strand from a fixed pool, as io_context::strand does: a strand of
  // its own would be another block per idle connection, and sharing one only orders handlers
  // that could have run in parallel. (A strand of the acceptor's any_io_executor would not fit
  // any_io_executor's inline storage: every copy of it, one per timer and work guard, was a
  // heap block, ~1 KB per idle connection.)
  std::vector<strand> strands;
  for (int i = 0; i < 193; ++i) strands.push_back(net::make_strand(io));
  for (std::size_t next = 0;; ++next) {
    auto [ec, socket] = co_await acceptor.async_accept(strands[next % strands.size()],
                                                      net::as_tuple(net::use_awaitable));
    if (ec) {
      if (ec == net::error::operation_aborted || !acceptor.is_open()) co_return;
      continue;  // e.g. too many open files: keep serving the others
    }
    // Events are small and latency matters: do not let Nagle hold one back for an ACK.
    beast::error_code ignored;
    socket.set_option(tcp::no_delay(true), ignored);
    auto executor = socket.get_executor();
    net::co_spawn(executor, http_session(s, http_stream(std::move(socket))), net::detached);
  }
}

}  // namespace

// Each connection is a descriptor: a server holding many needs more than the usual soft limit.
void raise_open_file_limit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
  }
}

int main(int argc, char** argv) {
  const config cfg = parse_args(argc, argv);
  raise_open_file_limit();
  // The io_context outlives the server: sockets die before their executor does.
  net::io_context io(static_cast<int>(cfg.threads));
  std::unique_ptr<server> srv;
  try {
    srv = std::make_unique<server>(cfg, net::make_strand(io));
  } catch (const std::exception& e) {
    std::cerr << "uniws-golden-path: " << e.what() << "\n";
    return 2;
  }
  server& s = *srv;

  tcp::acceptor acceptor(io);
  try {
    const tcp::endpoint endpoint(net::ip::make_address(cfg.address), cfg.port);
    acceptor.open(endpoint.protocol());
    acceptor.set_option(net::socket_base::reuse_address(true));
    acceptor.bind(endpoint);
    acceptor.listen(net::socket_base::max_listen_connections);
  } catch (const std::exception& e) {
    std::cerr << "uniws-golden-path: cannot listen on " << cfg.address << ":" << cfg.port << ": " << e.what() << "\n";
    return 1;
  }

  // Idle users are swept periodically.
  net::steady_timer sweep_timer(io);
  std::function<void()> schedule_sweep = [&] {
    sweep_timer.expires_after(std::chrono::seconds(std::max<long>(1, cfg.user_idle_ttl.count() / 2)));
    sweep_timer.async_wait([&](beast::error_code ec) {
      if (ec) return;
      s.factory.sweep_idle();
      schedule_sweep();
    });
  };
  schedule_sweep();

  // SIGINT/SIGTERM: stop accepting, close every WebSocket with 1001 after what it has queued,
  // wait for them (up to the drain timeout), then stop.
  net::signal_set signals(io, SIGINT, SIGTERM);
  net::steady_timer drain_timer(io);
  std::chrono::steady_clock::time_point drain_deadline;
  std::function<void()> wait_drained = [&] {
    if (s.open_websockets.load() == 0 || std::chrono::steady_clock::now() >= drain_deadline) {
      io.stop();
      return;
    }
    drain_timer.expires_after(10ms);
    drain_timer.async_wait([&](beast::error_code) { wait_drained(); });
  };
  signals.async_wait([&](beast::error_code ec, int) {
    if (ec) return;
    s.draining = true;
    s.factory.get_broker().stop();
    beast::error_code ignored;
    acceptor.close(ignored);
    sweep_timer.cancel();
    // Every open WebSocket is in its user's manager (one added after this sees `draining`).
    s.factory.for_each_manager([](std::string_view, auto& mgr) {
      mgr.for_each_connection([](connection& c) { c.close(uniws::close_code::going_away); });
    });
    drain_deadline = std::chrono::steady_clock::now() + cfg.drain_timeout;
    wait_drained();
  });

  net::co_spawn(io, listen(s, acceptor, io), net::detached);

  // Announced only now that SIGTERM is handled: a script may signal as soon as it reads this.
  const auto bound = acceptor.local_endpoint();
  std::cout << "listening on http://" << bound.address().to_string() << ":" << bound.port() << std::endl;

  {
    std::vector<std::jthread> pool;
    for (unsigned i = 1; i < cfg.threads; ++i) pool.emplace_back([&io] { io.run(); });
    io.run();
    io.stop();
  }
  // Managers (and the connections they hold) go before the io_context; then whatever the
  // managers retired is reclaimed while the sockets' executor still exists.
  srv.reset();
  uniws::detail::epoch_domain::instance().barrier();
  return 0;
}
