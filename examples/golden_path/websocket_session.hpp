// websocket_session.hpp - one open WebSocket: adds the connection to its user's manager, writes
// the upgrade's answer, then acts on each frame the client sends until the connection ends.
#pragma once

#include "connection.hpp"
#include "demo_agent.hpp"
#include "protocol.hpp"
#include "server_state.hpp"

#include <boost/asio.hpp>

#include <any>
#include <exception>
#include <memory>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>

namespace golden_path {

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
      net::co_spawn(conn.get_executor(), demo_agent(s, mgr, std::move(*run), f.message, f.steps, f.pad),
                    [&s = s](std::exception_ptr e) {
                      if (e) s.stats.add<&server_stats::session_errors>();
                    });
    }
  };
  std::visit(visitor{s, mgr, conn}, parse_client_frame(text, limits));
}

inline const manager_ref& user_manager_of(const websocket_session& session) {
  return *std::any_cast<manager_ref>(&session.user_manager);
}

template <class Connection>
void websocket_session::on_message(Connection& c, std::string_view payload, uniws::asio::message_kind kind) {
  server_state& s = *server;
  switch (rate.on_frame(s.opts.max_frames_per_second, frame_rate_limiter::clock::now())) {
    case frame_rate_limiter::verdict::accept:
      break;
    case frame_rate_limiter::verdict::refuse:
      s.stats.add<&server_stats::rate_limited>();
      return reply(
          s, c, uniws::create_error_message("rate_limited", "over --max-frames-per-second: frame ignored"));
    case frame_rate_limiter::verdict::close:
      s.stats.add<&server_stats::rate_limited>();
      s.stats.add<&server_stats::closed_rate_limited>();
      return c.close(uniws::close_code::policy_violation);
  }
  if (kind != uniws::asio::message_kind::text)
    reply_error(s, c, "unsupported", "binary frames are not supported; send JSON text");
  else
    handle_frame(s, user_manager_of(*this), c, payload);
}

template <class Connection>
void websocket_session::on_close(Connection& c) {
  user_manager_of(*this)->remove_connection(c.id());
  server->open_websockets.fetch_sub(1);
}

// Opens the WebSocket: the connection, holding its session, joins its user's manager, then
// writes the 101 and reads, `early` (bytes the client sent right behind its request) first. The
// HTTP session's coroutine ends here: an open connection keeps no coroutine frame.
inline void open_websocket(server_state& s, server_stream stream, std::string response, std::string early,
                           manager_ref mgr, connection_slot slot) {
  static_assert(sizeof(manager_ref) <= sizeof(void*) && std::is_nothrow_move_constructible_v<manager_ref>,
                "std::any holds it inline");
  auto conn = connection::create(s.next_connection_id.fetch_add(1), std::move(stream), s.connection_options(),
                                 s, std::any(mgr), std::move(slot));
  s.stats.add<&server_stats::websocket_sessions>();
  s.open_websockets.fetch_add(1);  // on_close gives it back, added or not
  const bool added = static_cast<bool>(mgr->add_connection(conn));
  conn->start(std::move(response), std::move(early));
  if (!added) {  // the user's last slot went to another upgrade meanwhile
    s.stats.add<&server_stats::upgrades_refused_user_full>();
    conn->close(uniws::close_code::try_again_later);
  } else if (s.draining.load()) {
    conn->close(uniws::close_code::going_away);
  }
}

}  // namespace golden_path
