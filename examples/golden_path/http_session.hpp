// http_session.hpp - one accepted TCP connection: reads HTTP requests and answers them
// (http_routes.hpp) until the peer leaves or upgrades to a WebSocket on /ws.
#pragma once

#include "http_routes.hpp"
#include "server_state.hpp"
#include "websocket_session.hpp"

#include <boost/asio.hpp>
#include <boost/beast.hpp>

#include <optional>
#include <string>
#include <utility>

namespace golden_path {

using http_stream = boost::beast::basic_stream<tcp, strand>;

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

inline net::awaitable<void> http_session(server_state& s, http_stream stream, audience a) {
  beast::flat_buffer buffer;
  for (;;) {
    http::request_parser<http::string_body> parser;
    parser.body_limit(16 * 1024);
    stream.expires_after(s.opts.handshake_timeout);  // a peer that sends nothing is cut off
    auto [ec, n] = co_await http::async_read(stream, buffer, parser, net::as_tuple(net::use_awaitable));
    if (ec) co_return;
    request req = parser.release();
    s.stats.add<&server_stats::http_requests>();
    const auto [path, query] = split_target(req.target());

    if (path == "/ws" && a != audience::operators) {
      const std::optional<std::string> user = authenticate(s, req, query);
      if (std::optional<response> refusal = refuse_upgrade(s, req, user)) {
        refusal->keep_alive(false);
        co_await http::async_write(stream, *refusal, net::as_tuple(net::use_awaitable));
        beast::error_code ignored;
        stream.socket().shutdown(socket_type::shutdown_send, ignored);
        co_return;
      }
      stream.expires_never();  // the WebSocket's own timeouts take over
      auto conn = connection::create(s.next_connection_id.fetch_add(1), stream.release_socket(), s.connection_options());
      buffer.clear();  // the request is parsed: give its bytes back for the WebSocket's lifetime
      buffer.shrink_to_fit();
      co_await websocket_session(s, std::move(conn), std::move(req), *user);
      co_return;
    }

    response res = route(s, req, path, a);
    const bool keep_alive = res.keep_alive();
    auto [wec, wn] = co_await http::async_write(stream, res, net::as_tuple(net::use_awaitable));
    if (wec || !keep_alive) {
      beast::error_code ignored;
      stream.socket().shutdown(socket_type::shutdown_send, ignored);
      co_return;
    }
  }
}

}  // namespace golden_path
