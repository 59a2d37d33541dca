// async_client.hpp - coroutine (Asio) clients of the example server's protocol,
// for drivers that hold thousands of connections on one thread: the soaks and uniws-load.
#pragma once

#include <boost/asio.hpp>
#include <boost/beast.hpp>
#include <boost/json.hpp>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>

namespace uniws_client {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace json = boost::json;
using tcp = net::ip::tcp;
using ws_stream = websocket::stream<beast::tcp_stream>;

struct http_reply {
  unsigned status = 0;
  std::string body;
};

/// One HTTP/1.1 request on its own connection (Connection: close).
inline net::awaitable<http_reply> http_call(tcp::endpoint server, http::verb verb, std::string target,
                                            std::string body = {}) {
  beast::tcp_stream stream(co_await net::this_coro::executor);
  stream.expires_after(std::chrono::seconds(15));
  co_await stream.async_connect(server, net::use_awaitable);
  http::request<http::string_body> req{verb, target, 11};
  req.set(http::field::host, "127.0.0.1");
  req.keep_alive(false);
  if (!body.empty()) {
    req.set(http::field::content_type, "application/json");
    req.body() = std::move(body);
  }
  req.prepare_payload();
  co_await http::async_write(stream, req, net::use_awaitable);
  beast::flat_buffer buffer;
  http::response<http::string_body> res;
  co_await http::async_read(stream, buffer, res, net::use_awaitable);
  co_return http_reply{res.result_int(), std::move(res.body())};
}

/// POST /login; the token, or an exception naming the refusal.
inline net::awaitable<std::string> login(tcp::endpoint server, std::string user, std::string password) {
  // Built outside the co_await: g++ 12 rejects a braced json::object inside one.
  std::string body = json::serialize(json::object{{"user", user}, {"password", password}});
  const http_reply r = co_await http_call(server, http::verb::post, "/login", std::move(body));
  if (r.status != 200) throw std::runtime_error("login of " + user + " refused: " + std::to_string(r.status));
  co_return std::string(json::parse(r.body).at("token").as_string());
}

/// GET /stats as a JSON object.
inline net::awaitable<json::object> stats(tcp::endpoint server) {
  const http_reply r = co_await http_call(server, http::verb::get, "/stats");
  co_return json::parse(r.body).as_object();
}

/// Opens /ws with the token as a bearer header; throws on refusal. `from`: the local address to
/// connect from (a loopback address of its own gives a driver its own range of ports).
inline net::awaitable<std::unique_ptr<ws_stream>> open_websocket(tcp::endpoint server, std::string token,
                                                                 std::optional<net::ip::address> from = {}) {
  auto ws = std::make_unique<ws_stream>(co_await net::this_coro::executor);
  auto& lowest = beast::get_lowest_layer(*ws);
  if (from) {
    lowest.socket().open(server.protocol());
    lowest.socket().bind(tcp::endpoint(*from, 0));
  }
  lowest.expires_after(std::chrono::seconds(15));
  co_await lowest.async_connect(server, net::use_awaitable);
  lowest.socket().set_option(tcp::no_delay(true));
  ws->set_option(websocket::stream_base::decorator(
      [token](websocket::request_type& req) { req.set(http::field::authorization, "Bearer " + token); }));
  co_await ws->async_handshake("127.0.0.1", "/ws", net::use_awaitable);
  lowest.expires_never();
  ws->set_option(websocket::stream_base::timeout::suggested(beast::role_type::client));
  co_return ws;
}

/// Attempts the upgrade with an optional bearer token: the HTTP status of the answer.
inline net::awaitable<unsigned> upgrade_status(tcp::endpoint server, std::optional<std::string> bearer) {
  ws_stream ws(co_await net::this_coro::executor);
  auto& lowest = beast::get_lowest_layer(ws);
  lowest.expires_after(std::chrono::seconds(15));
  co_await lowest.async_connect(server, net::use_awaitable);
  if (bearer)
    ws.set_option(websocket::stream_base::decorator(
        [b = *bearer](websocket::request_type& req) { req.set(http::field::authorization, "Bearer " + b); }));
  websocket::response_type res;
  beast::error_code refused;  // a refusal is an error here; the status is what the caller wants
  co_await ws.async_handshake(res, "127.0.0.1", "/ws", net::redirect_error(net::use_awaitable, refused));
  co_return res.result_int();
}

inline net::awaitable<void> send_json(ws_stream& ws, json::object o) {
  ws.text(true);
  const std::string text = json::serialize(o);
  co_await ws.async_write(net::buffer(text), net::use_awaitable);
}

/// The next frame as JSON; nullopt when the connection ends (the close code is in ws.reason()).
/// `joined` answers are skipped: this client drives load and does not resume (client.hpp does).
inline net::awaitable<std::optional<json::object>> read_json(ws_stream& ws) {
  for (;;) {
    beast::flat_buffer buffer;
    auto [ec, n] = co_await ws.async_read(buffer, net::as_tuple(net::use_awaitable));
    if (ec) co_return std::nullopt;
    json::value v = json::parse(beast::buffers_to_string(buffer.data()));
    if (!v.is_object()) throw std::runtime_error("the server sent a frame that is not a JSON object");
    if (const auto* type = v.as_object().if_contains("type"); type && *type == "joined") continue;
    co_return std::move(v.as_object());
  }
}

/// Reads until the connection ends; the close code the server sent (0 if none).
inline net::awaitable<int> drain_until_closed(ws_stream& ws) {
  beast::flat_buffer buffer;
  for (;;) {
    auto [ec, n] = co_await ws.async_read(buffer, net::as_tuple(net::use_awaitable));
    if (ec) co_return static_cast<int>(ws.reason().code);
    buffer.consume(buffer.size());
  }
}

inline json::object ping() { return json::object{{"type", "ping"}}; }
inline json::object join(std::string_view thread) {
  return json::object{{"type", "join"}, {"thread_id", thread}};
}

inline json::object run_agent(std::string_view thread, std::string_view message, int steps = 1,
                              std::size_t pad = 0) {
  json::object o{{"type", "run_agent"}, {"thread_id", thread}, {"message", message}, {"steps", steps}};
  if (pad) o["pad"] = pad;
  return o;
}

/// Runs `n` coroutines made by `make(i)` at once and waits for all; returns how many threw
/// (the first one's message goes to `first_error`).
template <class Make>
net::awaitable<std::size_t> run_all(std::size_t n, Make make, std::string* first_error = nullptr) {
  auto ex = co_await net::this_coro::executor;
  std::size_t left = n, failed = 0;
  net::steady_timer done(ex, net::steady_timer::time_point::max());
  for (std::size_t i = 0; i < n; ++i)
    net::co_spawn(ex, make(i), [&](std::exception_ptr e) {
      if (e && failed++ == 0 && first_error) {
        try {
          std::rethrow_exception(e);
        } catch (const std::exception& x) {
          *first_error = x.what();
        }
      }
      if (--left == 0) done.cancel();
    });
  while (left > 0) co_await done.async_wait(net::as_tuple(net::use_awaitable));
  co_return failed;
}

}  // namespace uniws_client
