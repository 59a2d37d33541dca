// websocket_session.hpp - one open WebSocket: accepts the upgrade, adds the connection to its
// user's manager, then reads frames and acts on them until the connection ends.
#pragma once

#include "demo_agent.hpp"
#include "protocol.hpp"
#include "server_state.hpp"

#include <uniws/beast/awaitable.hpp>

#include <boost/asio.hpp>
#include <boost/beast.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <exception>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace golden_path {

namespace beast = boost::beast;
namespace websocket = beast::websocket;

// Replies (errors, pongs) go straight to a connection, not through a manager: their drops are
// counted here, so a client that floods faster than it reads loses nothing uncounted.
inline void reply(server_state& s, connection& c, uniws::message m) {
  if (c.try_send(std::move(m)) == uniws::send_result::dropped) s.stats.add<&server_stats::replies_dropped>();
}

inline void reply_error(server_state& s, connection& c, std::string_view code, std::string_view text) {
  s.stats.add<&server_stats::bad_frames>();
  reply(s, c, uniws::create_error_message(code, text));
}

// Acts on one text frame: parsing (protocol.hpp) has no side effects; this has them all.
inline void handle_frame(server_state& s, const manager_ref& mgr, connection& conn, std::string_view text) {
  const frame_limits limits{.max_thread_id_length = s.opts.max_thread_id_length,
                            .max_steps = s.opts.max_steps};
  struct visitor {
    server_state& s;
    const manager_ref& mgr;
    connection& conn;
    // False (and the client told why) if the join was refused.
    bool joined(const uniws::join_result& r) const {
      if (r.status == uniws::join_status::too_many_threads)
        reply_error(s, conn, "too_many_threads",
                    "this connection has joined --max-threads-per-connection threads; leave one first");
      else if (!r)
        reply_error(s, conn, "bad_request", "cannot join this thread");
      return static_cast<bool>(r);
    }
    void operator()(const frame_error& e) const { reply_error(s, conn, e.code, e.message); }
    void operator()(const ping_frame&) const {
      reply(s, conn, uniws::message::copy_of(R"({"type":"pong"})"));
    }
    void operator()(const join_frame& f) const { joined(mgr->join_thread(conn.id(), f.thread_id, f.resume)); }
    void operator()(const leave_frame& f) const { mgr->leave_thread(conn.id(), f.thread_id); }
    void operator()(const run_agent_frame& f) const {
      if (!joined(mgr->join_thread(conn.id(), f.thread_id))) return;
      const std::string run_id = "r-" + std::to_string(s.next_run_id.fetch_add(1));
      auto run = mgr.try_start_run(f.thread_id, run_id,
                                   json_text::object({{"message", json_text::string(f.message)}}));
      if (!run)
        return reply_error(s, conn, "too_many_runs",
                           "this user has --max-runs-per-user runs in flight; wait for one to end");
      net::co_spawn(conn.stream().get_executor(),
                    demo_agent(s, mgr, std::move(*run), f.message, f.steps, f.pad),
                    [&s = s](std::exception_ptr e) {
                      if (e) s.stats.add<&server_stats::session_errors>();
                    });
    }
  };
  std::visit(visitor{s, mgr, conn}, parse_client_frame(text, limits));
}

// --max-frames-per-second as a token bucket (bursts of twice the rate). A client with frames
// refused in every second for 10 s is past being a burst: it is closed.
class frame_rate_limiter {
 public:
  using clock = std::chrono::steady_clock;
  enum class verdict : std::uint8_t { accept, refuse, close };

  verdict on_frame(unsigned rate, clock::time_point now) {
    const float burst = 2.0F * static_cast<float>(rate);
    tokens_ = last_ == clock::time_point{}
                  ? burst
                  : std::min(burst, tokens_ + std::chrono::duration<float>(now - last_).count() *
                                                  static_cast<float>(rate));
    last_ = now;
    if (tokens_ >= 1.0F) {
      tokens_ -= 1.0F;
      return verdict::accept;
    }
    if (now - last_refused_ > std::chrono::seconds(1)) over_since_ = now;  // a new streak
    last_refused_ = now;
    return now - over_since_ >= over_rate_limit ? verdict::close : verdict::refuse;
  }

  static constexpr std::chrono::seconds over_rate_limit{10};

 private:
  float tokens_ = 0;
  clock::time_point last_, last_refused_, over_since_;
};

// The read loop of an open WebSocket, in callbacks: an idle connection keeps one pending read
// and this object, not a coroutine frame. Reads go in 64-byte slices into an inline array;
// a message longer than a slice is gathered in `message_`, which is released once handled,
// so an idle connection holds no read buffer of its own. --max-message-size bounds a message
// (Beast closes with 1009 beyond it).
class websocket_reader {
 public:
  websocket_reader(server_state& s, std::shared_ptr<connection> conn, manager_ref mgr, connection_slot slot)
      : s_(s), conn_(std::move(conn)), mgr_(std::move(mgr)), slot_(std::move(slot)) {}

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
    switch (rate_.on_frame(s_.opts.max_frames_per_second, frame_rate_limiter::clock::now())) {
      case frame_rate_limiter::verdict::accept:
        break;
      case frame_rate_limiter::verdict::refuse:
        s_.stats.add<&server_stats::rate_limited>();
        return reply(
            s_, *conn_,
            uniws::create_error_message("rate_limited", "over --max-frames-per-second: frame ignored"));
      case frame_rate_limiter::verdict::close:
        s_.stats.add<&server_stats::rate_limited>();
        s_.stats.add<&server_stats::closed_rate_limited>();
        return conn_->close(uniws::close_code::policy_violation);
    }
    if (!conn_->stream().got_text())
      reply_error(s_, *conn_, "unsupported", "binary frames are not supported; send JSON text");
    else
      handle_frame(s_, mgr_, *conn_, text);
  }

  void finish() {
    conn_->mark_closed();
    mgr_->remove_connection(conn_->id());
    s_.open_websockets.fetch_sub(1);
  }

  server_state& s_;
  const std::shared_ptr<connection> conn_;
  const manager_ref mgr_;
  const connection_slot slot_;
  std::unique_ptr<std::string> message_;  // only while a message spans slices
  frame_rate_limiter rate_;
  std::array<char, 64> slice_{};
};

// Bytes a client sent right behind its upgrade request (frames it did not wait to send) belong
// to the WebSocket. Beast takes them only with the request, as bytes into its read buffer
// (1536 bytes): the request is restated with just the fields the handshake reads. Nothing if
// they do not fit; the caller refuses the upgrade then, rather than lose them.
inline constexpr std::size_t max_upgrade_handover = 1536;
inline std::optional<std::string> upgrade_with_early_bytes(
    const beast::http::request<beast::http::string_body>& req, std::string_view early) {
  namespace http = beast::http;
  std::string bytes = "GET / HTTP/1.1\r\n";
  for (const http::field f :
       {http::field::host, http::field::connection, http::field::upgrade, http::field::sec_websocket_key,
        http::field::sec_websocket_version, http::field::sec_websocket_extensions}) {
    if (const auto it = req.find(f); it != req.end()) {
      bytes.append(http::to_string(f)).append(": ").append(it->value()).append("\r\n");
    }
  }
  bytes.append("\r\n").append(early);
  if (bytes.size() > max_upgrade_handover) return std::nullopt;
  return bytes;
}

// Opens the WebSocket, adds it to its user's manager, then hands the connection to its reader:
// this coroutine (and the HTTP session's) ends there, so an open connection keeps no frame.
// `early`: what upgrade_with_early_bytes made, or empty.
inline net::awaitable<void> websocket_session(server_state& s, std::shared_ptr<connection> conn,
                                              beast::http::request<beast::http::string_body> req,
                                              std::string early, manager_ref mgr, connection_slot slot) {
  auto& ws = conn->stream();
  ws.set_option(websocket::stream_base::decorator(
      [](websocket::response_type& res) { res.set(beast::http::field::server, "uniws-golden-path"); }));
  auto [accept_ec] = early.empty()
                         ? co_await ws.async_accept(req, net::as_tuple(net::use_awaitable))
                         : co_await ws.async_accept(net::buffer(early), net::as_tuple(net::use_awaitable));
  req = {};
  early = {};
  if (accept_ec) co_return;
  s.stats.add<&server_stats::websocket_sessions>();

  if (!mgr->add_connection(conn)) {  // the user's last slot went to another upgrade meanwhile
    s.stats.add<&server_stats::upgrades_refused_user_full>();
    conn->close(uniws::close_code::try_again_later);
    co_return;
  }
  s.open_websockets.fetch_add(1);
  if (s.draining.load()) conn->close(uniws::close_code::going_away);
  websocket_reader::read_next(
      std::make_shared<websocket_reader>(s, std::move(conn), std::move(mgr), std::move(slot)));
}

}  // namespace golden_path
