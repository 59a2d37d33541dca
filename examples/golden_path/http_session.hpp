// http_session.hpp - one accepted TCP connection: reads HTTP requests and answers them
// (http_routes.hpp) until the peer leaves or upgrades to a WebSocket on /ws.
#pragma once

#include "http_routes.hpp"
#include "server_state.hpp"
#include "websocket_session.hpp"

#include <uniws/asio/upgrade.hpp>
#include <uniws/beast/awaitable.hpp>

#include <boost/asio.hpp>
#include <boost/beast.hpp>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>

namespace golden_path {

namespace beast = boost::beast;
namespace websocket = boost::beast::websocket;

// Cuts a peer off that takes too long over the TLS handshake or a request: the socket is closed,
// which ends whatever operation is pending. The stream is shared with the timer's handler
// only weakly, so a handler that fires as the session ends finds nothing to close.
class deadline {
 public:
  explicit deadline(const std::shared_ptr<server_stream>& stream)
      : timer_(stream->get_executor()), stream_(stream) {}

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
  net::basic_waitable_timer<std::chrono::steady_clock, net::wait_traits<std::chrono::steady_clock>,
                            connection_executor>
      timer_;
  std::weak_ptr<server_stream> stream_;
};

// Why a /ws request is not upgraded, or nothing if it may be.
inline std::optional<response> refuse_upgrade(server_state& s, const request& req,
                                              const std::optional<std::string>& user) {
  // A browser says where the page came from: only the server's own pages and allowed ones may
  // open a WebSocket with the user's credentials (cross-site WebSocket hijacking).
  const auto origin = req.find(http::field::origin);
  if (!s.origins.allows_upgrade(
          origin == req.end() ? std::nullopt : std::optional<std::string_view>(origin->value()),
          req[http::field::host], false)) {
    s.stats.add<&server_stats::origins_refused>();
    return error_response(req, http::status::forbidden, "origin_not_allowed",
                          "pages from this origin may not connect");
  }
  if (!user) {
    s.stats.add<&server_stats::auth_failures>();
    return error_response(req, http::status::unauthorized, "unauthorized", "a valid token is required");
  }
  if (s.draining.load())
    return error_response(req, http::status::service_unavailable, "draining", "shutting down");
  if (!websocket::is_upgrade(req))
    return error_response(req, http::status::bad_request, "bad_request", "expected a WebSocket upgrade");
  return std::nullopt;
}

// The answer to a request that broke a bound (H11) or the grammar; nothing if the peer just
// left or timed out. `header_done`: the parser got past the header, so a buffer overflow was a
// chunk-size line (extensions) or a trailer.
inline std::optional<response> refusal_for(beast::error_code ec, bool header_done) {
  if (ec.category() != http::make_error_code(http::error::end_of_stream).category() ||
      ec == http::error::end_of_stream || ec == http::error::partial_message)
    return std::nullopt;
  const request none;
  if (ec == http::error::body_limit)
    return error_response(none, http::status::payload_too_large, "body_too_large",
                          "a request body may have " + std::to_string(max_request_body_bytes) + " bytes");
  if (ec == http::error::header_limit || (ec == http::error::buffer_overflow && !header_done))
    return error_response(none, http::status::request_header_fields_too_large, "headers_too_large",
                          "a request header may have " + std::to_string(max_request_header_bytes) + " bytes");
  if (ec == http::error::buffer_overflow)
    return error_response(
        none, http::status::bad_request, "bad_request",
        "a chunk line or trailer may have " + std::to_string(max_request_buffer_bytes) + " bytes");
  return error_response(none, http::status::bad_request, "bad_request",
                        "malformed HTTP request: " + ec.message());
}

// Answers, then closes. The peer may still be sending: closing with its bytes unread would reset
// the connection, and the reset can destroy the answer before the peer reads it. So the send
// side is shut first and a bounded amount of what arrives is read and thrown away.
inline net::awaitable<void> answer_and_close(server_stream& stream, deadline& timeout, response res) {
  res.keep_alive(false);
  timeout.arm(std::chrono::seconds(1));
  auto [wec, wn] = co_await http::async_write(stream, res, net::as_tuple(net::use_awaitable));
  if (wec) co_return;
  beast::error_code ignored;
  stream.socket().shutdown(socket_type::shutdown_send, ignored);
  std::array<char, 4096> discard{};
  for (std::size_t total = 0; total < 64 * discard.size();) {
    auto [rec, n] = co_await stream.async_read_some(net::buffer(discard), net::as_tuple(net::use_awaitable));
    if (rec) break;
    total += n;
  }
}

// One accepted connection. `slot`: one of --max-connections; without one (the server is full)
// the connection's request is answered 503 and nothing else.
inline net::awaitable<void> http_session(server_state& s, socket_type socket, audience a,
                                         std::optional<connection_slot> slot) {
  beast::error_code ec;
  const tcp::endpoint peer = socket.remote_endpoint(ec);
  const std::string peer_address = ec ? std::string() : peer.address().to_string();
  auto stream = s.tls ? std::make_shared<server_stream>(std::move(socket), *s.tls)
                      : std::make_shared<server_stream>(std::move(socket));
  deadline timeout(stream);  // the handshake timeout bounds the TLS handshake and each request
  auto end = [&] {
    beast::error_code ignored;
    stream->socket().shutdown(socket_type::shutdown_send, ignored);
  };

  if (stream->is_tls()) {
    timeout.arm(slot ? s.opts.handshake_timeout : std::chrono::seconds(1));
    auto [hec] = co_await stream->tls().async_handshake(net::ssl::stream_base::server,
                                                        net::as_tuple(net::use_awaitable));
    if (hec) {  // plaintext on the TLS port, a stalled or a failed handshake
      s.stats.add<&server_stats::tls_handshakes_failed>();
      co_return;
    }
  }

  // Bounded: a header, a chunk-size line or a trailer that does not fit is refused (H11).
  beast::flat_buffer buffer(max_request_buffer_bytes);
  for (;;) {
    http::request_parser<http::string_body> parser;
    parser.header_limit(static_cast<std::uint32_t>(max_request_header_bytes));
    parser.body_limit(max_request_body_bytes);
    timeout.arm(slot ? s.opts.handshake_timeout
                     : std::chrono::seconds(1));  // a peer that sends nothing is cut off
    auto [rec, n] = co_await http::async_read(*stream, buffer, parser, net::as_tuple(net::use_awaitable));
    if (rec) {
      if (std::optional<response> refusal = refusal_for(rec, parser.is_header_done())) {
        s.stats.add<&server_stats::requests_refused>();
        co_await answer_and_close(*stream, timeout, std::move(*refusal));
      }
      co_return;
    }
    request req = parser.release();
    s.stats.add<&server_stats::http_requests>();
    if (!slot) {
      s.stats.add<&server_stats::connections_refused_server_full>();
      co_await answer_and_close(*stream, timeout,
                                error_response(req, http::status::service_unavailable, "too_many_connections",
                                               "the server has --max-connections open; try again later"));
      co_return;
    }
    const auto [path, query] = split_target(req.target());

    if (path == "/ws" && a != audience::operators) {
      const std::optional<std::string> user = authenticate(s, req, query);
      std::optional<response> refusal = refuse_upgrade(s, req, user);
      manager_ref mgr;
      if (!refusal) {
        // The golden path: the session awaits its user's manager through the async factory.
        mgr = co_await uniws::beast::await_task(
            s.factory.get_websocket_manager_async(uniws::basic_user_context(*user)));
        if (const auto* m = mgr.get(); m && !m->has_room_for_connection()) {
          s.stats.add<&server_stats::upgrades_refused_user_full>();
          refusal = error_response(req, http::status::too_many_requests, "too_many_connections",
                                   "this user has --max-connections-per-user WebSockets open");
        }
      }
      if (refusal) {
        // With CORS headers (B2): a page from an allowed origin can read why (clients/js asks).
        co_await answer_and_close(*stream, timeout, with_cors(s, req, std::move(*refusal)));
        co_return;
      }
      uniws::asio::upgrade_answer upgrade = uniws::asio::answer_upgrade(req, "uniws-golden-path");
      if (!upgrade.accepted) {  // not a WebSocket handshake it can answer: 400 or 426, saying why
        s.stats.add<&server_stats::requests_refused>();
        co_await net::async_write(*stream, net::buffer(upgrade.response), net::as_tuple(net::use_awaitable));
        end();
        co_return;
      }
      timeout.disarm();  // the connection's own deadlines take over (sweepers.hpp)
      // Bytes behind the request are the client's first frames: the WebSocket's.
      std::string early(static_cast<const char*>(buffer.data().data()), buffer.size());
      buffer = beast::flat_buffer();  // give the request's bytes back for the WebSocket's lifetime
      server_stream ws_stream = std::move(*stream);
      stream.reset();  // moved from: the deadline's handler must not find it
      open_websocket(s, std::move(ws_stream), std::move(upgrade.response), std::move(early), std::move(mgr),
                     std::move(*slot));
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
