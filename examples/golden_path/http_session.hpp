// http_session.hpp - one accepted TCP connection: reads HTTP requests and answers them
// (http_routes.hpp) until the peer leaves or upgrades to a WebSocket on /ws.
#pragma once

#include "http_routes.hpp"
#include "server_state.hpp"
#include "websocket_session.hpp"

#include <boost/asio.hpp>
#include <boost/beast.hpp>

#include <chrono>
#include <memory>
#include <optional>
#include <string>
#include <utility>

namespace golden_path {

// Cuts a peer off that takes too long over the TLS handshake or a request: the socket is closed,
// which ends whatever operation is pending. The stream is shared with the timer's handler
// only weakly, so a handler that fires as the session ends finds nothing to close.
class deadline {
 public:
  explicit deadline(const std::shared_ptr<server_stream>& stream) : timer_(stream->get_executor()), stream_(stream) {}

  void arm(std::chrono::steady_clock::duration d) {
    timer_.expires_after(d);  // cancels the previous wait
    timer_.async_wait([stream = stream_](beast::error_code ec) {
      if (ec) return;
      if (const auto s = stream.lock()) {
        beast::error_code ignored;
        s->socket().close(ignored);
      }
    });
  }
  void disarm() { timer_.cancel(); }

 private:
  net::basic_waitable_timer<std::chrono::steady_clock, net::wait_traits<std::chrono::steady_clock>, strand> timer_;
  std::weak_ptr<server_stream> stream_;
};

// Why a /ws request is not upgraded, or nothing if it may be.
inline std::optional<response> refuse_upgrade(server_state& s, const request& req, const std::optional<std::string>& user) {
  // A browser says where the page came from: only the server's own pages and allowed ones may
  // open a WebSocket with the user's credentials (cross-site WebSocket hijacking).
  const auto origin = req.find(http::field::origin);
  if (!s.origins.allows_upgrade(origin == req.end() ? std::nullopt : std::optional<std::string_view>(origin->value()),
                                req[http::field::host], false)) {
    s.stats.add<&server_stats::origins_refused>();
    return error_response(req, http::status::forbidden, "origin_not_allowed", "pages from this origin may not connect");
  }
  if (!user) {
    s.stats.add<&server_stats::auth_failures>();
    return error_response(req, http::status::unauthorized, "unauthorized", "a valid token is required");
  }
  if (s.draining.load()) return error_response(req, http::status::service_unavailable, "draining", "shutting down");
  if (!websocket::is_upgrade(req)) return error_response(req, http::status::bad_request, "bad_request", "expected a WebSocket upgrade");
  return std::nullopt;
}

inline net::awaitable<void> http_session(server_state& s, socket_type socket, audience a) {
  beast::error_code ec;
  const tcp::endpoint peer = socket.remote_endpoint(ec);
  const std::string peer_address = ec ? std::string() : peer.address().to_string();
  auto stream = s.tls ? std::make_shared<server_stream>(std::move(socket), *s.tls) : std::make_shared<server_stream>(std::move(socket));
  deadline timeout(stream);  // the handshake timeout bounds the TLS handshake and each request
  auto end = [&] {
    beast::error_code ignored;
    stream->socket().shutdown(socket_type::shutdown_send, ignored);
  };

  if (stream->is_tls()) {
    timeout.arm(s.opts.handshake_timeout);
    auto [hec] = co_await stream->tls().async_handshake(net::ssl::stream_base::server, net::as_tuple(net::use_awaitable));
    if (hec) {  // plaintext on the TLS port, a stalled or a failed handshake
      s.stats.add<&server_stats::tls_handshakes_failed>();
      co_return;
    }
  }

  beast::flat_buffer buffer;
  for (;;) {
    http::request_parser<http::string_body> parser;
    parser.body_limit(16 * 1024);
    timeout.arm(s.opts.handshake_timeout);  // a peer that sends nothing is cut off
    auto [rec, n] = co_await http::async_read(*stream, buffer, parser, net::as_tuple(net::use_awaitable));
    if (rec) co_return;
    request req = parser.release();
    s.stats.add<&server_stats::http_requests>();
    const auto [path, query] = split_target(req.target());

    if (path == "/ws" && a != audience::operators) {
      const std::optional<std::string> user = authenticate(s, req, query);
      if (std::optional<response> refusal = refuse_upgrade(s, req, user)) {
        refusal->keep_alive(false);
        co_await http::async_write(*stream, *refusal, net::as_tuple(net::use_awaitable));
        end();
        co_return;
      }
      timeout.disarm();  // the WebSocket's own timeouts take over
      auto conn = connection::create(s.next_connection_id.fetch_add(1), std::move(*stream), s.connection_options());
      stream.reset();  // moved from: the deadline's handler must not find it
      buffer.clear();  // the request is parsed: give its bytes back for the WebSocket's lifetime
      buffer.shrink_to_fit();
      co_await websocket_session(s, std::move(conn), std::move(req), *user);
      co_return;
    }

    response res = route(s, req, path, a, peer_address);
    const bool keep_alive = res.keep_alive();
    auto [wec, wn] = co_await http::async_write(*stream, res, net::as_tuple(net::use_awaitable));
    if (wec || !keep_alive) {
      end();
      co_return;
    }
  }
}

}  // namespace golden_path
