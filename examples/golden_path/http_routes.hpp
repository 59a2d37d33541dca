// http_routes.hpp - the plain HTTP API: POST /login, GET /health; for operators GET /config,
// /stats, /metrics; every other request gets a JSON error. One request in, one response out.
#pragma once

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

namespace golden_path {

namespace http = boost::beast::http;
using request = http::request<http::string_body>;
using response = http::response<http::string_body>;

inline response json_response(const request& req, http::status status, std::string body) {
  response res{status, req.version()};
  res.set(http::field::server, "uniws-golden-path");
  res.set(http::field::content_type, "application/json");
  res.keep_alive(req.keep_alive());
  res.body() = std::move(body);
  res.prepare_payload();
  return res;
}

inline response error_response(const request& req, http::status status, std::string_view code, std::string_view message) {
  namespace json = boost::json;
  return json_response(req, status, json::serialize(json::object{{"error", json::object{{"code", code}, {"message", message}}}}));
}

// application/json, with or without parameters (charset=utf-8).
inline bool is_json(const request& req) {
  const std::string_view type = req[http::field::content_type];
  const std::string_view media = type.substr(0, type.find(';'));
  return boost::beast::iequals(media.substr(0, media.find_last_not_of(' ') + 1), "application/json");
}

inline response handle_login(server_state& s, const request& req) {
  // A form or text/plain post needs no CORS preflight: only JSON is a login.
  if (!is_json(req))
    return error_response(req, http::status::unsupported_media_type, "unsupported_media_type", "send application/json");
  const std::optional<credentials> login = parse_login(req.body());
  if (!login)
    return error_response(req, http::status::bad_request, "bad_request", R"(expected {"user":"...","password":"..."})");
  if (!s.users.check(login->user, login->password)) {
    s.stats.add<&server_stats::auth_failures>();
    return error_response(req, http::status::unauthorized, "invalid_credentials", "unknown user or wrong password");
  }
  const std::string token = s.tokens.issue(login->user);
  const auto ttl = std::chrono::duration_cast<std::chrono::seconds>(s.tokens.ttl()).count();
  return json_response(req, http::status::ok,
                       boost::json::serialize(boost::json::object{{"token", token}, {"user", login->user}, {"expires_in", ttl}}));
}

inline response handle_health(server_state& s, const request& req) {
  if (s.draining.load()) return json_response(req, http::status::service_unavailable, R"({"status":"draining"})");
  return json_response(req, http::status::ok,
                       boost::json::serialize(boost::json::object{{"status", "ok"}, {"users", s.factory.user_count()}}));
}

inline response handle_config(server_state& s, const request& req) {
  return json_response(req, http::status::ok, boost::json::serialize(config_json(s.opts)));
}

inline response handle_stats(server_state& s, const request& req) {
  return json_response(req, http::status::ok, stats_body(s));
}

inline response handle_metrics(server_state& s, const request& req) {
  response res = json_response(req, http::status::ok, metrics_body(s));
  res.set(http::field::content_type, uniws::prometheus::content_type);
  return res;
}

/// Which routes a listener serves: with --admin-port the operator's routes move there.
enum class audience : std::uint8_t { everyone, clients, operators };

// The HTTP API, declared once: route() and the 405's Allow header are read from it.
struct http_route {
  std::string_view path;
  http::verb method;
  response (*handle)(server_state&, const request&);
  bool for_operators;  // user and connection counts: not for everyone when there is an admin port
};
inline constexpr http_route http_routes[] = {
    {"/login", http::verb::post, handle_login, false},
    {"/health", http::verb::get, handle_health, false},
    {"/config", http::verb::get, handle_config, true},
    {"/stats", http::verb::get, handle_stats, true},
    {"/metrics", http::verb::get, handle_metrics, true},
};

inline bool serves(audience a, bool for_operators) {
  return a == audience::everyone || for_operators == (a == audience::operators);
}

inline response route(server_state& s, const request& req, std::string_view path, audience a) {
  for (const http_route& r : http_routes) {
    if (r.path != path || !serves(a, r.for_operators)) continue;
    if (r.method == req.method()) return r.handle(s, req);
    response res = error_response(req, http::status::method_not_allowed, "method_not_allowed",
                                  "use " + std::string(http::to_string(r.method)));
    res.set(http::field::allow, http::to_string(r.method));
    return res;
  }
  return error_response(req, http::status::not_found, "not_found", "no such resource");
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

/// The user a /ws request's token (Authorization: Bearer, or ?token=) belongs to.
inline std::optional<std::string> authenticate(server_state& s, const request& req, std::string_view query) {
  std::string_view token = query_param(query, "token");
  if (const auto it = req.find(http::field::authorization); it != req.end()) {
    const std::string_view value = it->value();
    if (value.substr(0, 7) == "Bearer ") token = value.substr(7);
  }
  if (token.empty()) return std::nullopt;
  return s.tokens.user_for(token);
}

}  // namespace golden_path
