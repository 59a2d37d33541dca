// event_loops.hpp - one io_context per thread (--threads of them), each run by its own thread.
//
// A connection lives on one loop: all its handlers, and the agent runs it starts, run on that
// loop's thread, in order, so it needs no strand. A run delivers to the connections of its own
// loop without a post (uniws::beast writes at once when called on the stream's executor) and
// posts to those of other loops. Acceptors, signals and sweeps run on the first loop.
#pragma once

#include "server_stream.hpp"

#include <boost/asio.hpp>

#include <atomic>
#include <cstddef>
#include <functional>
#include <memory>
#include <thread>
#include <vector>

namespace golden_path {

class event_loops {
  // A pending handler of one loop may hold the last reference to a connection of another (a
  // user's manager holds connections of every loop): every loop's handlers are let go before
  // any loop is destroyed, through io_context's shutdown(), which its destructor calls too.
  class loop : public net::io_context {
   public:
    using net::execution_context::shutdown;
    using net::io_context::io_context;
  };

 public:
  explicit event_loops(unsigned count) {
    for (unsigned i = 0; i < std::max(1u, count); ++i) {
      loops_.push_back(std::make_unique<loop>(1));  // one thread runs it
      // A loop with no connection yet must not return from run().
      guards_.push_back(net::make_work_guard(*loops_.back()));
    }
  }
  ~event_loops() {
    guards_.clear();
    for (auto& l : loops_) l->shutdown();
  }
  event_loops(const event_loops&) = delete;
  event_loops& operator=(const event_loops&) = delete;

  /// The loop of the acceptors, signals and timers.
  [[nodiscard]] net::io_context& first() noexcept { return *loops_.front(); }

  /// The executor a new connection lives on: the loops in turn.
  [[nodiscard]] connection_executor next_for_connection() noexcept {
    return loops_[next_.fetch_add(1, std::memory_order_relaxed) % loops_.size()]->get_executor();
  }

  /// Runs every loop, the first on this thread, until stop(). `run_one_loop(loop)` runs a loop
  /// until it returns for good (it may restart it after a handler threw).
  void run(const std::function<void(net::io_context&)>& run_one_loop) {
    std::vector<std::jthread> threads;
    for (std::size_t i = 1; i < loops_.size(); ++i)
      threads.emplace_back([&, i] { run_one_loop(*loops_[i]); });
    run_one_loop(first());
    stop();
  }

  /// Makes every loop's run() return.
  void stop() noexcept {
    for (auto& loop : loops_) loop->stop();
  }

 private:
  std::vector<std::unique_ptr<loop>> loops_;
  std::vector<net::executor_work_guard<net::io_context::executor_type>> guards_;
  std::atomic<std::size_t> next_{0};
};

}  // namespace golden_path
