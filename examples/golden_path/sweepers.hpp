// sweepers.hpp - the server's periodic work, on its first loop: forgetting users that left, and
// the connections' deadlines (quiet, silent, stalled, a closing handshake not finished).
#pragma once

#include "server_state.hpp"

#include <boost/asio.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string_view>
#include <vector>

namespace golden_path {

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

/// The connections' deadlines, once a second, with no timer per connection. Each connection's
/// timeouts are checked (two atomic loads; a ping for a peer quiet for half --idle-timeout, a cut
/// for one silent for all of it or one whose closing handshake takes over --handshake-timeout),
/// and those that wrote since a check last found them settled are listed for the stall check:
/// cut off if their peer has taken none of what waits for it for --stall-timeout (a peer that
/// stopped reading holds its queue until then, however small). Listing 19,000 idle ones cost
/// about 0.2 % of a core (benchmarks/RESULTS.md, the ceiling). The listed are checked a slice at
/// a time, a short pause between slices. A check is a handler and a system call
/// on the connection's loop: done all at once (and with two system calls then), 1,000 busy
/// connections held their loop about 2.5 ms every second, and the light-load p99 was 3 ms over
/// uWebSockets'.
class connection_sweeper {
 public:
  using clock = std::chrono::steady_clock;
  static constexpr clock::duration round = std::chrono::seconds(1);
  static constexpr clock::duration pause = std::chrono::milliseconds(5);  ///< between two slices
  static constexpr std::size_t least_slice = 32;
  static constexpr std::size_t most_slices = 100;  ///< a round's slices take at most half of it

  connection_sweeper(net::io_context& io, server_state& s)
      : timer_(io), s_(s), timeouts_(s.connection_timeouts()) {
    wait_until(clock::now() + round);
  }
  connection_sweeper(const connection_sweeper&) = delete;  // its timer's handler holds `this`
  connection_sweeper& operator=(const connection_sweeper&) = delete;
  void cancel() { timer_.cancel(); }

 private:
  void list() {
    round_started_ = clock::now();
    due_.clear();
    s_.factory.for_each_manager([this](std::string_view, auto& mgr) {
      mgr.for_each_connection([this](connection& c) {
        if (const auto done = c.check_timeouts(timeouts_, round_started_);
            done == connection::timeout_action::cut_idle || done == connection::timeout_action::cut_closing)
          s_.stats.add<&server_stats::connections_closed_idle>();
        if (c.has_unsettled_writes()) due_.push_back(c.weak_from_this());
      });
    });
    next_ = 0;
    slice_ = std::max(least_slice, (due_.size() + most_slices - 1) / most_slices);
    check_slice();
  }

  void check_slice() {
    for (const std::size_t end = std::min(due_.size(), next_ + slice_); next_ < end; ++next_)
      if (const auto c = due_[next_].lock())
        c->cut_off_if_stalled(s_.opts.stall_timeout,
                              [&s = s_] { s.stats.add<&server_stats::connections_closed_stalled>(); });
    if (next_ < due_.size()) {
      wait_until(clock::now() + pause);
    } else {
      due_ = {};  // holds no connection between rounds, not even weakly, nor the list's storage
      wait_until(round_started_ + round);
    }
  }

  void wait_until(clock::time_point at) {
    timer_.expires_at(at);
    timer_.async_wait([this](const boost::system::error_code& ec) {
      if (ec) return;
      if (next_ < due_.size())
        check_slice();
      else
        list();
    });
  }

  net::steady_timer timer_;
  server_state& s_;
  const uniws::asio::connection_timeouts timeouts_;
  std::vector<std::weak_ptr<connection>> due_;  ///< this round's connections, checked from next_
  std::size_t next_ = 0, slice_ = least_slice;
  clock::time_point round_started_;
};

}  // namespace golden_path
