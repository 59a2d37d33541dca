// http_routes.hpp - the HTTP API, one table of routes: the demo page, /login, /health; for
// operators /config, /stats, /metrics, /disconnect; CORS; JSON errors. One request in, one out.
#pragma once

#include "demo_page.hpp"
#include "metrics.hpp"
#include "protocol.hpp"
#include "server_state.hpp"

#include <boost/beast/http.hpp>
#include <boost/json.hpp>

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>

namespace golden_path {

namespace http = boost::beast::http;
using request = http::request<http::string_body>;
using response = http::response<http::string_body>;

inline response make_response(const request& req, http::status status, std::string_view content_type,
                              std::string body) {
  response res{status, req.version()};
  res.set(http::field::server, "uniws-golden-path");
  res.set(http::field::content_type, content_type);
  res.keep_alive(req.keep_alive());
  res.body() = std::move(body);
  res.prepare_payload();
  return res;
}

inline response json_response(const request& req, http::status status, std::string body) {
  return make_response(req, status, "application/json", std::move(body));
}

inline response error_response(const request& req, http::status status, std::string_view code,
                               std::string_view message) {
  namespace json = boost::json;
  return json_response(
      req, status,
      json::serialize(json::object{{"error", json::object{{"code", code}, {"message", message}}}}));
}

/// The path and the query of a request target.
inline std::pair<std::string_view, std::string_view> split_target(std::string_view target) {
  const auto q = target.find('?');
  return q == std::string_view::npos ? std::pair{target, std::string_view{}}
                                     : std::pair{target.substr(0, q), target.substr(q + 1)};
}

inline std::string_view query_param(std::string_view query, std::string_view name) {
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

// application/json, with or without parameters (charset=utf-8).
inline bool is_json(const request& req) {
  const std::string_view type = req[http::field::content_type];
  const std::string_view media = type.substr(0, type.find(';'));
  return boost::beast::iequals(media.substr(0, media.find_last_not_of(' ') + 1), "application/json");
}

// Tokens are JWTs (jwt.hpp). Failed passwords are counted per user and address (auth.hpp):
// past the limit the answer is 429 and the password is not even checked.
inline response handle_login(server_state& s, const request& req, std::string_view peer_address) {
  if (!s.tokens.can_issue())
    return error_response(
        req, http::status::not_found, "login_disabled",
        "this server accepts tokens from an identity provider (--jwt-public-key) and issues none");
  // A form or text/plain post needs no CORS preflight: only JSON is a login.
  if (!is_json(req))
    return error_response(req, http::status::unsupported_media_type, "unsupported_media_type",
                          "send application/json");
  const std::optional<credentials> login = parse_login(req.body());
  if (!login)
    return error_response(req, http::status::bad_request, "bad_request",
                          R"(expected {"user":"...","password":"..."})");
  if (const auto wait = s.logins.refused_for(login->user, peer_address)) {
    s.stats.add<&server_stats::logins_throttled>();
    response res =
        error_response(req, http::status::too_many_requests, "too_many_attempts",
                       "too many failed logins; retry after " + std::to_string(wait->count()) + " s");
    res.set(http::field::retry_after, std::to_string(wait->count()));
    return res;
  }
  if (!s.users.check(login->user, login->password)) {
    s.logins.failed(login->user, peer_address);
    s.stats.add<&server_stats::auth_failures>();
    return error_response(req, http::status::unauthorized, "invalid_credentials",
                          "unknown user or wrong password");
  }
  s.logins.succeeded(login->user, peer_address);
  return json_response(req, http::status::ok,
                       boost::json::serialize(boost::json::object{{"token", s.tokens.issue(login->user)},
                                                                  {"user", login->user},
                                                                  {"expires_in", s.tokens.ttl().count()}}));
}

// The broker as /health names it: "none", "up", "down", or "refused" (our credentials).
inline std::string_view broker_health(server_state& s) {
  if (!s.factory.get_broker().enabled()) return "none";
  const uniws::broker_stats b = s.factory.get_broker().stats();
  return b.connected ? "up" : b.refused ? "refused" : "down";
}

inline response handle_health(server_state& s, const request& req, std::string_view) {
  if (s.draining.load())
    return json_response(req, http::status::service_unavailable, R"({"status":"draining"})");
  // A node whose broker is down still serves its own users (their events are delivered
  // locally), so it stays 200: "broker" tells the operator why the cluster is split.
  return json_response(
      req, http::status::ok,
      boost::json::serialize(boost::json::object{
          {"status", "ok"}, {"users", s.factory.user_count()}, {"broker", broker_health(s)}}));
}

inline response handle_config(server_state& s, const request& req, std::string_view) {
  boost::json::object config = config_json(s.opts);
  config["jwt_algorithm"] = jwt::to_string(s.tokens.algorithm());  // known once the key is read
  return json_response(req, http::status::ok, boost::json::serialize(config));
}

inline response handle_stats(server_state& s, const request& req, std::string_view) {
  return json_response(req, http::status::ok, stats_body(s));
}

inline response handle_metrics(server_state& s, const request& req, std::string_view) {
  return make_response(req, http::status::ok, uniws::prometheus::content_type, metrics_body(s));
}

// GET /: the demo page (demo_page.hpp).
inline response handle_page(server_state&, const request& req, std::string_view) {
  return make_response(req, http::status::ok, "text/html; charset=utf-8", demo_page());
}

// Closes every WebSocket of ?user= with 1001 (they reconnect): an operator's action, served on
// the admin port only.
inline response handle_disconnect(server_state& s, const request& req, std::string_view) {
  const std::string_view user = query_param(split_target(req.target()).second, "user");
  std::size_t closed = 0;
  s.factory.for_each_manager([&](std::string_view id, auto& mgr) {
    if (id != user) return;
    mgr.for_each_connection([&](connection& c) {
      c.close(uniws::close_code::going_away);
      ++closed;
    });
  });
  return json_response(req, http::status::ok,
                       boost::json::serialize(boost::json::object{{"closed", closed}}));
}

/// Which routes a listener serves: with --admin-port the operators' routes move there.
enum class audience : std::uint8_t { everyone, clients, operators };
/// Who a route is for: clients; operators (on the main port when there is no admin port);
/// the admin port only.
enum class route_for : std::uint8_t { clients, operators, admin_port };

inline bool serves(audience a, route_for r) {
  switch (a) {
    case audience::everyone:
      return r != route_for::admin_port;
    case audience::clients:
      return r == route_for::clients;
    case audience::operators:
      return r != route_for::clients;
  }
  return false;
}

// The HTTP API, declared once: route(), the 405's Allow and the CORS preflight read it.
struct http_route {
  std::string_view path;
  http::verb method;
  response (*handle)(server_state&, const request&, std::string_view peer_address);
  route_for who;
};
inline constexpr http_route http_routes[] = {
    {"/", http::verb::get, handle_page, route_for::clients},
    {"/login", http::verb::post, handle_login, route_for::clients},
    {"/health", http::verb::get, handle_health, route_for::clients},
    {"/config", http::verb::get, handle_config, route_for::operators},
    {"/stats", http::verb::get, handle_stats, route_for::operators},
    {"/metrics", http::verb::get, handle_metrics, route_for::operators},
    {"/disconnect", http::verb::post, handle_disconnect, route_for::admin_port},
};

// CORS for a page from another origin (--allow-origin): a preflight is answered from the route
// table; every answer names the allowed origin. A page from the server's own origin, and a
// client that is not a browser, send no Origin and get none of this.
inline response preflight(server_state& s, const request& req, const http_route& r) {
  const std::string_view origin = req[http::field::origin];
  if (!s.origins.allows(origin)) {
    s.stats.add<&server_stats::origins_refused>();
    return error_response(req, http::status::forbidden, "origin_not_allowed",
                          "this origin may not call this server");
  }
  response res{http::status::no_content, req.version()};
  res.set(http::field::server, "uniws-golden-path");
  res.set(http::field::access_control_allow_methods, http::to_string(r.method));
  res.set(http::field::access_control_allow_headers, "Content-Type, Authorization");
  res.set(http::field::access_control_max_age, "600");
  res.keep_alive(req.keep_alive());
  return res;
}

inline response with_cors(server_state& s, const request& req, response res) {
  if (!s.origins.any_allowed()) return res;
  res.set(http::field::vary, "Origin");
  if (const std::string_view origin = req[http::field::origin]; !origin.empty() && s.origins.allows(origin))
    res.set(http::field::access_control_allow_origin, origin);
  return res;
}

inline response route(server_state& s, const request& req, std::string_view path, audience a,
                      std::string_view peer_address) {
  for (const http_route& r : http_routes) {
    if (r.path != path || !serves(a, r.who)) continue;
    if (r.method == req.method()) return with_cors(s, req, r.handle(s, req, peer_address));
    if (req.method() == http::verb::options) return with_cors(s, req, preflight(s, req, r));
    response res = error_response(req, http::status::method_not_allowed, "method_not_allowed",
                                  "use " + std::string(http::to_string(r.method)));
    res.set(http::field::allow, http::to_string(r.method));
    return with_cors(s, req, std::move(res));
  }
  return with_cors(s, req, error_response(req, http::status::not_found, "not_found", "no such resource"));
}

/// The user a /ws request's token (Authorization: Bearer, or ?token=) belongs to.
inline std::optional<std::string> authenticate(server_state& s, const request& req, std::string_view query) {
  std::string_view token = query_param(query, "token");
  if (const auto it = req.find(http::field::authorization); it != req.end()) {
    const std::string_view value = it->value();
    if (value.substr(0, 7) == "Bearer ") token = value.substr(7);
  }
  if (token.empty()) return std::nullopt;
  auto result = s.tokens.verify(token);
  if (auto* v = std::get_if<jwt::verified>(&result)) return std::move(v->subject);
  return std::nullopt;
}

}  // namespace golden_path
