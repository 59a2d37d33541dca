// uniws/asio/upgrade.hpp - the server's answer to a WebSocket upgrade request (RFC 6455 4.2),
// read with Boost.Beast's HTTP parser: 101 with the Sec-WebSocket-Accept the client checks, or
// 400 (426 for a version other than 13) saying what was wrong. The request's size is the
// reader's to bound (uniws/asio/connection.hpp).
#pragma once

#include <boost/beast/http/field.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/rfc7230.hpp>
#include <boost/beast/http/verb.hpp>
#include <boost/beast/websocket/detail/hybi13.hpp>

#include <string>
#include <string_view>

namespace uniws::asio {

/// An upgrade request's answer: the HTTP response's bytes, to write as they are.
struct upgrade_answer {
  bool accepted = false;  ///< 101: the connection is a WebSocket once `response` is written
  std::string response;   ///< the 101, or the 400/426 saying why it is refused
};

/// Answers `req`; `server` names the server in the response.
template <class Body, class Fields>
upgrade_answer answer_upgrade(const boost::beast::http::request<Body, Fields>& req, std::string_view server) {
  namespace http = boost::beast::http;
  const auto field = [&req](http::field f) -> std::string_view {
    const auto it = req.find(f);
    return it == req.end() ? std::string_view() : std::string_view(it->value().data(), it->value().size());
  };
  const auto refuse = [server](std::string_view status, std::string_view why, std::string_view extra = {}) {
    std::string r = "HTTP/1.1 ";
    r.append(status).append("\r\nServer: ").append(server).append("\r\nContent-Type: text/plain\r\n");
    r.append(extra)
        .append("Content-Length: ")
        .append(std::to_string(why.size()))
        .append("\r\n\r\n")
        .append(why);
    return upgrade_answer{false, std::move(r)};
  };
  if (req.version() != 11) return refuse("400 Bad Request", "an upgrade is an HTTP/1.1 request");
  if (req.method() != http::verb::get) return refuse("400 Bad Request", "an upgrade is a GET");
  if (field(http::field::host).empty()) return refuse("400 Bad Request", "no Host");
  if (!http::token_list(field(http::field::connection)).exists("upgrade"))
    return refuse("400 Bad Request", "Connection does not say upgrade");
  if (!http::token_list(field(http::field::upgrade)).exists("websocket"))
    return refuse("400 Bad Request", "Upgrade does not say websocket");
  const std::string_view key = field(http::field::sec_websocket_key);
  if (key.size() != 24) return refuse("400 Bad Request", "Sec-WebSocket-Key is not 16 bytes in base64");
  if (field(http::field::sec_websocket_version) != "13")
    return refuse("426 Upgrade Required", "this server speaks WebSocket version 13",
                  "Sec-WebSocket-Version: 13\r\n");
  boost::beast::websocket::detail::sec_ws_accept_type accept;
  boost::beast::websocket::detail::make_sec_ws_accept(accept, key);
  std::string r = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nServer: ";
  r.append(server)
      .append("\r\nSec-WebSocket-Accept: ")
      .append(accept.data(), accept.size())
      .append("\r\n\r\n");
  return upgrade_answer{true, std::move(r)};
}

}  // namespace uniws::asio
