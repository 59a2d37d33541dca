// client.hpp - a blocking client of the protocol (Beast): HTTP requests, and WebSocket sessions
// that read JSON frames with a deadline. The terminal client and the integration tests use it;
// drivers that hold thousands of connections use async_client.hpp.
#pragma once

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>
#include <boost/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace uniws_client::sync {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace json = boost::json;
using tcp = net::ip::tcp;

/// Where the server is; a bare port means 127.0.0.1.
struct server_address {
  server_address(unsigned short p) : port(p) {}  // NOLINT: implicit, a port is an address here
  server_address(std::string h, unsigned short p) : host(std::move(h)), port(p) {}
  std::string host = "127.0.0.1";
  unsigned short port = 0;
  /// The Host header: a browser names the port, and the server's own origin is derived from it.
  [[nodiscard]] std::string host_header() const { return host + ":" + std::to_string(port); }
};

inline void connect(beast::tcp_stream& stream, const server_address& at) {
  tcp::resolver resolver(stream.get_executor());
  stream.connect(resolver.resolve(at.host, std::to_string(at.port)));
}

struct http_result {
  int status = 0;
  std::string body;
  http::fields headers;
  json::value json() const { return json::parse(body); }
};

inline http_result http_request(const server_address& at, http::verb verb, std::string target,
                                std::string body = {},
                                std::vector<std::pair<http::field, std::string>> headers = {}) {
  net::io_context io;
  beast::tcp_stream stream(io);
  connect(stream, at);
  stream.expires_after(std::chrono::seconds(10));
  http::request<http::string_body> req{verb, target, 11};
  req.set(http::field::host, at.host_header());
  if (!body.empty()) req.set(http::field::content_type, "application/json");
  for (auto& [f, v] : headers) req.set(f, v);  // after: a test may send another content type
  req.body() = std::move(body);
  req.prepare_payload();
  http::write(stream, req);
  beast::flat_buffer buffer;
  http::response<http::string_body> res;
  http::read(stream, buffer, res);
  return {static_cast<int>(res.result_int()), res.body(), static_cast<http::fields>(res.base())};
}

inline std::string login(const server_address& at, const std::string& user, const std::string& password) {
  const auto r = http_request(at, http::verb::post, "/login",
                              json::serialize(json::object{{"user", user}, {"password", password}}));
  if (r.status != 200) throw std::runtime_error("login failed: " + std::to_string(r.status) + " " + r.body);
  return std::string(r.json().at("token").as_string());
}

/// A WebSocket client. Reads run with a deadline so a missing event fails the test rather
/// than hanging it.
class ws_client {
 public:
  enum class token_in { header, query };

  /// Connects and upgrades; throws beast::system_error (e.g. with the HTTP 401) on failure.
  ws_client(const server_address& at, const std::string& token, token_in where = token_in::header)
      : at_(at), token_(token), where_(where) {
    open();
  }

  /// Where a thread's events stopped: the epoch of its `joined` answer and the last seq read.
  struct resume_state {
    std::string epoch;
    std::uint64_t last_seq = 0;
  };

  /// Opens a new connection after the old one was lost and resumes every thread joined so far
  /// from where its events stopped (docs/protocol.md §R). Throws if the server cannot be reached.
  void reconnect() { reconnect(at_); }
  /// The same, to another server (another node of a cluster).
  void reconnect(const server_address& at) {
    at_ = at;
    open();
    for (const auto& [thread, at] : threads_)
      send(json::object{
          {"type", "join"}, {"thread_id", thread}, {"epoch", at.epoch}, {"after_seq", at.last_seq}});
  }

  /// `joined` answers are read and kept (joined_frames()), not returned by read(), unless asked:
  /// they are the protocol's bookkeeping, as a browser page would treat them.
  void show_joined(bool on) { show_joined_ = on; }
  [[nodiscard]] const std::vector<json::object>& joined_frames() const { return joined_; }
  [[nodiscard]] const std::map<std::string, resume_state>& threads() const { return threads_; }

  /// Attempts the upgrade and returns the HTTP status of the refusal (or 101).
  static int upgrade_status(const server_address& at, std::optional<std::string> bearer,
                            std::string target = "/ws") {
    net::io_context io;
    websocket::stream<beast::tcp_stream> ws(io);
    connect(beast::get_lowest_layer(ws), at);
    beast::get_lowest_layer(ws).expires_after(std::chrono::seconds(10));
    if (bearer)
      ws.set_option(websocket::stream_base::decorator([b = *bearer](websocket::request_type& req) {
        req.set(http::field::authorization, "Bearer " + b);
      }));
    websocket::response_type res;
    beast::error_code ec;
    ws.handshake(res, at.host_header(), target, ec);
    return static_cast<int>(res.result_int());
  }

  void send(const json::object& o) { send_text(json::serialize(o)); }
  void send_text(const std::string& text) {
    ws_->text(true);
    ws_->write(net::buffer(text));
  }
  void send_binary(const std::string& bytes) {
    ws_->binary(true);
    ws_->write(net::buffer(bytes));
  }

  /// The next frame as JSON, or nullopt if none came in time (or the connection closed).
  /// A timeout ends the connection (Beast's stream timeouts close the socket).
  std::optional<json::object> read(std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      beast::flat_buffer buffer;
      beast::error_code ec;
      const auto left =
          std::max(deadline - std::chrono::steady_clock::now(), std::chrono::steady_clock::duration(0));
      beast::get_lowest_layer(*ws_).expires_after(left);  // applies to asynchronous operations only
      ws_->async_read(buffer, [&ec](beast::error_code e, std::size_t) { ec = e; });
      io_.restart();
      io_.run();
      beast::get_lowest_layer(*ws_).expires_never();
      if (ec) {
        last_error_ = ec;
        return std::nullopt;
      }
      json::object frame = json::parse(beast::buffers_to_string(buffer.data())).as_object();
      if (!track(frame) || show_joined_) return frame;
    }
  }

  /// Reads frames until one of type `type` (returns every frame read, that one last).
  std::vector<json::object> read_until(const std::string& type,
                                       std::chrono::milliseconds timeout = std::chrono::seconds(10)) {
    std::vector<json::object> frames;
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      auto f = read(
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()));
      if (!f) break;
      frames.push_back(*f);
      if (f->at("type").as_string() == type) break;
    }
    return frames;
  }

  /// Reads until the server closes; returns the code of the close frame it sent (0 if none
  /// came). Beast records the frame even when its own close reply then fails (the server may
  /// have torn the TCP connection down already).
  int read_until_closed(std::vector<json::object>* frames = nullptr,
                        std::chrono::milliseconds timeout = std::chrono::seconds(15)) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      auto f = read(
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()));
      if (!f) break;
      if (frames) frames->push_back(*f);
    }
    return static_cast<int>(ws_->reason().code);
  }

  [[nodiscard]] beast::error_code last_error() const { return last_error_; }
  [[nodiscard]] bool is_open() const { return ws_->is_open(); }
  void close() {
    beast::error_code ignored;
    ws_->close(websocket::close_code::normal, ignored);
  }
  beast::tcp_stream& lowest() { return beast::get_lowest_layer(*ws_); }

 private:
  void open() {
    ws_ = std::make_unique<websocket::stream<beast::tcp_stream>>(io_);
    connect(beast::get_lowest_layer(*ws_), at_);
    beast::get_lowest_layer(*ws_).expires_after(std::chrono::seconds(10));
    std::string target = "/ws";
    if (where_ == token_in::header) {
      ws_->set_option(websocket::stream_base::decorator([token = token_](websocket::request_type& req) {
        req.set(http::field::authorization, "Bearer " + token);
      }));
    } else {
      target += "?token=" + token_;
    }
    ws_->handshake(at_.host_header(), target);
    beast::get_lowest_layer(*ws_).expires_never();
  }

  // Keeps each thread's resume point; true for a `joined` answer.
  bool track(const json::object& f) {
    const auto* type = f.if_contains("type");
    const auto* thread = f.if_contains("thread_id");
    const auto* seq = f.if_contains("seq");
    if (!type || !thread || !seq || !thread->is_string() || !seq->is_number()) return false;
    resume_state& at = threads_[std::string(thread->as_string())];
    if (type->as_string() == "joined") {
      at.last_seq = seq->to_number<std::uint64_t>();  // the thread's events up to here were sent, or replayed
      at.epoch = std::string(f.at("epoch").as_string());
      joined_.push_back(f);
      return true;
    }
    at.last_seq = seq->to_number<std::uint64_t>();
    return false;
  }

  server_address at_;
  std::string token_;
  token_in where_;
  net::io_context io_;
  std::unique_ptr<websocket::stream<beast::tcp_stream>> ws_;
  beast::error_code last_error_;
  bool show_joined_ = false;
  std::vector<json::object> joined_;
  std::map<std::string, resume_state> threads_;
};

}  // namespace uniws_client::sync
