// shutdown.hpp - SIGINT/SIGTERM: answer new upgrades 503, close every WebSocket with 1001 after what it
// has queued, wait for them (up to --drain-timeout-ms), then stop the event loops.
#pragma once

#include "event_loops.hpp"
#include "server_state.hpp"

#include <boost/asio.hpp>

#include <chrono>
#include <csignal>
#include <functional>

namespace golden_path {

class graceful_shutdown {
 public:
  /// `on_stop` runs first when the signal comes (cancel timers).
  graceful_shutdown(event_loops& loops, server_state& s, std::function<void()> on_stop)
      : loops_(loops),
        s_(s),
        on_stop_(std::move(on_stop)),
        signals_(loops.first(), SIGINT, SIGTERM),
        drain_timer_(loops.first()) {
    signals_.async_wait([this](const boost::system::error_code& ec, int) {
      if (!ec) begin();
    });
  }

 private:
  void begin() {
    s_.draining = true;
    s_.factory.get_broker().stop();
    on_stop_();
    // Every open WebSocket is in its user's manager (one added after this sees `draining`).
    s_.factory.for_each_manager([](std::string_view, auto& mgr) {
      mgr.for_each_connection([](connection& c) { c.close(uniws::close_code::going_away); });
    });
    deadline_ = std::chrono::steady_clock::now() + s_.opts.drain_timeout;
    wait_drained();
  }

  void wait_drained() {
    if (s_.open_websockets.load() == 0 || std::chrono::steady_clock::now() >= deadline_) {
      loops_.stop();
      return;
    }
    drain_timer_.expires_after(std::chrono::milliseconds(10));
    drain_timer_.async_wait([this](const boost::system::error_code&) { wait_drained(); });
  }

  event_loops& loops_;
  server_state& s_;
  std::function<void()> on_stop_;
  net::signal_set signals_;
  net::steady_timer drain_timer_;
  std::chrono::steady_clock::time_point deadline_;
};

}  // namespace golden_path
