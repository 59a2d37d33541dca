// demo_agent.hpp - the agent the demo runs: started, N thoughts, one tool call, completed.
// It stands in for a real model; its events always follow the grammar (uniws::agent_run).
#pragma once

#include "server_state.hpp"

#include <boost/asio.hpp>

#include <algorithm>
#include <chrono>
#include <cstddef>
#include <string>
#include <utility>

namespace golden_path {

using uniws::json_text;
// A run from manager_ref::try_start_run: one of its user's runs in flight until it ends.
using demo_run = uniws::agent_run<uniws::run_lease<manager_ref>>;

// The agent's clock: its events are due at fixed times from the run's start (a model streams on
// its own schedule, whatever the server is doing), so a late wake-up does not push back every
// later event. A pause of 0 still yields, so that a run of many steps shares its thread with
// every other session instead of holding it until the run ends; unless `burst` (--agent-burst):
// a model that has its whole answer at once emits it in one go.
class agent_clock {
 public:
  using clock = std::chrono::steady_clock;

  explicit agent_clock(net::any_io_executor executor) : timer_(std::move(executor)) {}

  // Waits until `d` after the previous event was due; at once (but for a yield) if that has passed.
  net::awaitable<void> pause(std::chrono::milliseconds d, bool burst) {
    if (d.count() == 0) {
      due_ = clock::now();
      if (!burst) co_await net::post(timer_.get_executor(), net::use_awaitable);
      co_return;
    }
    due_ = std::max(due_ + d, clock::now());
    timer_.expires_at(due_);
    co_await timer_.async_wait(net::use_awaitable);
  }

 private:
  net::steady_timer timer_;
  clock::time_point due_ = clock::now();
};

// Whether anyone still reads a run's thread: a connection of the user has joined it within
// --orphan-run-seconds (longer than a reconnect, so a dropped client still resumes).
class reader_watch {
 public:
  reader_watch(manager_ref mgr, std::string thread_id, std::chrono::seconds orphan)
      : mgr_(std::move(mgr)), thread_id_(std::move(thread_id)), orphan_(orphan) {}
  // Whether a connection has joined the thread now.
  bool watched() {
    const bool now_watched = mgr_->thread_has_connection(thread_id_);
    if (now_watched) last_seen_ = std::chrono::steady_clock::now();
    return now_watched;
  }
  bool abandoned() const { return std::chrono::steady_clock::now() - last_seen_ >= orphan_; }

 private:
  manager_ref mgr_;
  std::string thread_id_;
  std::chrono::seconds orphan_;
  std::chrono::steady_clock::time_point last_seen_ = std::chrono::steady_clock::now();
};

// A run nobody watches goes on (its events wait in the history for a resume) but at a walk, one
// step per this at most: work for nobody must not take the CPU from runs someone reads.
inline constexpr std::chrono::milliseconds unwatched_step{20};

inline constexpr std::string_view orphan_reason = "no connection of the user watched this thread";

// Parameters by value: the coroutine outlives the caller's frame.
inline net::awaitable<void> demo_agent(server_state& s, manager_ref mgr, demo_run run, std::string text,
                                       int steps, std::size_t pad) {
  reader_watch watch(std::move(mgr), run.thread_id(), s.opts.orphan_run);
  const auto delay = s.opts.agent_delay;
  const bool burst = s.opts.agent_burst;
  agent_clock agent(co_await net::this_coro::executor);
  for (int i = 1; i <= steps; ++i) {
    co_await agent.pause(watch.watched() ? delay : std::max(delay, unwatched_step), burst);
    if (watch.abandoned()) {
      s.stats.add<&server_stats::runs_cancelled>();
      std::move(run).cancel(orphan_reason);
      co_return;
    }
    run.thinking(json_text::object({{"step", json_text::number(i)},
                                    {"text", json_text::string("thinking about: " + text)},
                                    {"pad", json_text::string(std::string(pad, '.'))}}));
  }
  co_await agent.pause(delay, burst);
  auto call = std::move(run).execute_tool("echo", json_text::object({{"input", json_text::string(text)}}));
  co_await agent.pause(delay, burst);
  auto after = std::move(call).finish(json_text::string(text));
  co_await agent.pause(delay, burst);
  std::move(after).complete("You said: " + text);
}

}  // namespace golden_path
