// connection.hpp - the server's connection type: a lean uniws::asio connection on the server's
// stream (plain or TLS), holding its WebSocket session's state, so that an idle connection is one
// block of memory, one descriptor and one pending wait (benchmarks/RESULTS.md, idle bytes).
#pragma once

#include "server_stream.hpp"

#include <uniws/asio/connection.hpp>

#include <algorithm>
#include <any>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <utility>

namespace golden_path {

struct server_state;

// One of --max-connections, held from accept until the connection's last owner lets go.
class connection_slot {
 public:
  explicit connection_slot(std::atomic<std::size_t>& open) noexcept : open_(&open) { open.fetch_add(1); }
  connection_slot(connection_slot&& o) noexcept : open_(std::exchange(o.open_, nullptr)) {}
  connection_slot& operator=(connection_slot&&) = delete;
  ~connection_slot() {
    if (open_) open_->fetch_sub(1);
  }

 private:
  std::atomic<std::size_t>* open_;
};

// --max-frames-per-second as a token bucket (bursts of twice the rate). A client with frames
// refused in every second for 10 s is past being a burst: it is closed.
class frame_rate_limiter {
 public:
  using clock = std::chrono::steady_clock;
  enum class verdict : std::uint8_t { accept, refuse, close };

  verdict on_frame(unsigned rate, clock::time_point now) {
    const float burst = 2.0F * static_cast<float>(rate);
    tokens_ = last_ == clock::time_point{}
                  ? burst
                  : std::min(burst, tokens_ + std::chrono::duration<float>(now - last_).count() *
                                                  static_cast<float>(rate));
    last_ = now;
    if (tokens_ >= 1.0F) {
      tokens_ -= 1.0F;
      return verdict::accept;
    }
    if (now - last_refused_ > std::chrono::seconds(1)) over_since_ = now;  // a new streak
    last_refused_ = now;
    return now - over_since_ >= over_rate_limit ? verdict::close : verdict::refuse;
  }

  static constexpr std::chrono::seconds over_rate_limit{10};

 private:
  float tokens_ = 0;
  clock::time_point last_, last_refused_, over_since_;
};

// An open WebSocket's own state, inside its connection: websocket_session.hpp acts on what the
// client sends (on_message) and on the end (on_close), on the connection's loop.
struct websocket_session {
  websocket_session(server_state& state, std::any manager, connection_slot s)
      : server(&state), user_manager(std::move(manager)), slot(std::move(s)) {}

  template <class Connection>
  void on_message(Connection& c, std::string_view payload, uniws::asio::message_kind kind);
  template <class Connection>
  void on_close(Connection& c);

  server_state* server;
  // The user's manager, a manager_ref: its type names the connection's, which holds this
  // session, so it cannot be named here; held in std::any (inline: it is a pointer's size) and
  // cast back in websocket_session.hpp.
  std::any user_manager;
  connection_slot slot;
  frame_rate_limiter rate;
};

using connection = uniws::asio::basic_websocket_connection<server_stream, websocket_session>;

}  // namespace golden_path
