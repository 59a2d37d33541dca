// websocket_session.hpp - one open WebSocket: accepts the upgrade, adds the connection to its
// user's manager, then reads frames and acts on them until the connection ends.
#pragma once

#include "demo_agent.hpp"
#include "protocol.hpp"
#include "server_state.hpp"

#include <uniws/beast/awaitable.hpp>

#include <boost/asio.hpp>
#include <boost/beast.hpp>

#include <array>
#include <memory>
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
  const frame_limits limits{.max_thread_id_length = s.opts.max_thread_id_length, .max_steps = s.opts.max_steps};
  struct visitor {
    server_state& s;
    const manager_ref& mgr;
    connection& conn;
    void operator()(const frame_error& e) const { reply_error(s, conn, e.code, e.message); }
    void operator()(const ping_frame&) const { reply(s, conn, uniws::message::copy_of(R"({"type":"pong"})")); }
    void operator()(const join_frame& f) const {
      if (!mgr->join_thread(conn.id(), f.thread_id, f.resume)) reply_error(s, conn, "bad_request", "cannot join this thread");
    }
    void operator()(const leave_frame& f) const { mgr->leave_thread(conn.id(), f.thread_id); }
    void operator()(const run_agent_frame& f) const {
      if (!mgr->join_thread(conn.id(), f.thread_id)) return reply_error(s, conn, "bad_request", "cannot join this thread");
      const std::string run_id = "r-" + std::to_string(s.next_run_id.fetch_add(1));
      net::co_spawn(conn.stream().get_executor(),
                    demo_agent(mgr, f.thread_id, run_id, f.message, f.steps, f.pad, s.opts.agent_delay), net::detached);
    }
  };
  std::visit(visitor{s, mgr, conn}, parse_client_frame(text, limits));
}

// The read loop of an open WebSocket, in callbacks: an idle connection keeps one pending read
// and this object, not a coroutine frame. Reads go in 64-byte slices into an inline array;
// a message longer than a slice is gathered in `message_`, which is released once handled,
// so an idle connection holds no read buffer of its own. --max-message-size bounds a message
// (Beast closes with 1009 beyond it).
class websocket_reader {
 public:
  websocket_reader(server_state& s, std::shared_ptr<connection> conn, manager_ref mgr)
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
    if (!conn_->stream().got_text()) reply_error(s_, *conn_, "unsupported", "binary frames are not supported; send JSON text");
    else handle_frame(s_, mgr_, *conn_, text);
  }

  void finish() {
    conn_->mark_closed();
    mgr_->remove_connection(conn_->id());
    s_.open_websockets.fetch_sub(1);
  }

  server_state& s_;
  const std::shared_ptr<connection> conn_;
  const manager_ref mgr_;
  std::unique_ptr<std::string> message_;  // only while a message spans slices
  std::array<char, 64> slice_{};
};

// Opens the WebSocket, gets the user's manager, then hands the connection to its reader: this
// coroutine (and the HTTP session's) ends there, so an open connection keeps no frame.
inline net::awaitable<void> websocket_session(server_state& s, std::shared_ptr<connection> conn,
                                              beast::http::request<beast::http::string_body> req, std::string user) {
  auto& ws = conn->stream();
  ws.set_option(websocket::stream_base::decorator(
      [](websocket::response_type& res) { res.set(beast::http::field::server, "uniws-golden-path"); }));
  auto [accept_ec] = co_await ws.async_accept(req, net::as_tuple(net::use_awaitable));
  req = {};
  if (accept_ec) co_return;
  s.stats.add<&server_stats::websocket_sessions>();

  // The golden path: the session awaits its user's manager through the async factory.
  manager_ref mgr = co_await uniws::beast::await_task(s.factory.get_websocket_manager_async(uniws::basic_user_context(user)));
  mgr->add_connection(conn);
  s.open_websockets.fetch_add(1);
  if (s.draining.load()) conn->close(uniws::close_code::going_away);
  websocket_reader::read_next(std::make_shared<websocket_reader>(s, std::move(conn), std::move(mgr)));
}

}  // namespace golden_path
