// shutdown.hpp - SIGINT/SIGTERM: answer new upgrades 503, close every WebSocket with 1001 after what it
// has queued, wait for them (up to --drain-timeout-ms), then stop the event loops.
#pragma once

#include "event_loops.hpp"
#include "server_state.hpp"

#include <boost/asio.hpp>

#include <algorithm>
#include <chrono>
#include <csignal>
#include <cstdint>
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

/// Calls `work()` every `period` on the io_context until cancelled.
class every {
 public:
  every(net::io_context& io, std::chrono::steady_clock::duration period, std::function<void()> work)
      : timer_(io), period_(period), work_(std::move(work)) {
    schedule();
  }
  every(const every&) = delete;  // its timer's handler holds `this`
  every& operator=(const every&) = delete;
  void cancel() { timer_.cancel(); }

 private:
  void schedule() {
    timer_.expires_after(period_);
    timer_.async_wait([this](const boost::system::error_code& ec) {
      if (ec) return;
      work_();
      schedule();
    });
  }

  net::steady_timer timer_;
  std::chrono::steady_clock::duration period_;
  std::function<void()> work_;
};

/// Forgets users that have had no connection for --user-idle-ttl, every half of it.
inline every idle_sweeper(net::io_context& io, server_state& s) {
  return every(io, std::chrono::seconds(std::max<long>(1, s.opts.user_idle_ttl.count() / 2)),
               [&s] { s.factory.sweep_idle(); });
}

/// Cuts off the connections whose peer has taken none of what waits for it for --stall-timeout:
/// a peer that stopped reading holds its queue until then, however small. Once a second every
/// connection is asked; only one that has written since its last settled check posts a check
/// (a handler and two system calls on its loop), so connections at rest cost an atomic load
/// each: 19,000 idle ones, about 0.2 % of a core (benchmarks/RESULTS.md, the ceiling).
inline every stall_sweeper(net::io_context& io, server_state& s) {
  return every(io, std::chrono::seconds(1), [&s] {
    s.factory.for_each_manager([&s](std::string_view, auto& mgr) {
      mgr.for_each_connection([&s](connection& c) {
        c.cut_off_if_stalled(s.opts.stall_timeout,
                             [&s] { s.stats.add<&server_stats::connections_closed_stalled>(); });
      });
    });
  });
}

}  // namespace golden_path
