// origin_policy.hpp - which web origins may use the server: the Origin check of the WebSocket
// upgrade and the CORS answers of the HTTP API. Pure: strings in, a decision out (unit-tested).
#pragma once

#include <algorithm>
#include <cctype>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace golden_path {

/// An origin in the form browsers compare: lower-case scheme and host, the port always
/// written ("http://Example.com" and "http://example.com:80" are one origin).
inline std::optional<std::string> normalize_origin(std::string_view origin) {
  const auto sep = origin.find("://");
  if (sep == std::string_view::npos || sep == 0) return std::nullopt;  // "null", garbage
  std::string scheme(origin.substr(0, sep));
  std::string_view rest = origin.substr(sep + 3);
  if (rest.empty() || rest.find_first_of("/?#@ ") != std::string_view::npos) return std::nullopt;
  std::string host(rest), port;
  if (const auto colon = rest.rfind(':'); colon != std::string_view::npos && rest.back() != ']') {
    host = std::string(rest.substr(0, colon));
    port = std::string(rest.substr(colon + 1));
    if (port.empty() || port.size() > 5 ||
        !std::all_of(port.begin(), port.end(), [](unsigned char c) { return std::isdigit(c); }))
      return std::nullopt;
    port = std::to_string(std::stoi(port));  // "080" is 80
  }
  auto lower = [](std::string& s) {
    for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  };
  lower(scheme);
  lower(host);
  if (host.empty() || (scheme != "http" && scheme != "https")) return std::nullopt;
  if (port.empty()) port = scheme == "https" ? "443" : "80";
  return scheme + "://" + host + ":" + port;
}

class origin_policy {
 public:
  /// `allowed`: the --allow-origin values; ones that are not origins are refused at start.
  explicit origin_policy(const std::vector<std::string>& allowed) {
    for (const std::string& a : allowed)
      if (auto n = normalize_origin(a)) allowed_.push_back(*n);
  }

  [[nodiscard]] bool any_allowed() const noexcept { return !allowed_.empty(); }

  /// May a page from `origin` call the HTTP API (CORS)? Only the allowed ones; a page from the
  /// server's own origin needs no CORS at all.
  [[nodiscard]] bool allows(std::string_view origin) const {
    const auto n = normalize_origin(origin);
    return n && std::find(allowed_.begin(), allowed_.end(), *n) != allowed_.end();
  }

  /// May this upgrade go ahead? No Origin (scripts, servers): yes. Otherwise the page must come
  /// from the server itself (Origin matches the Host the request was sent to) or be allowed.
  [[nodiscard]] bool allows_upgrade(std::optional<std::string_view> origin, std::string_view host,
                                    bool tls) const {
    if (!origin) return true;
    const auto own = normalize_origin(std::string(tls ? "https://" : "http://") + std::string(host));
    const auto n = normalize_origin(*origin);
    return n && ((own && *n == *own) || allows(*origin));
  }

 private:
  std::vector<std::string> allowed_;  // normalized
};

}  // namespace golden_path
