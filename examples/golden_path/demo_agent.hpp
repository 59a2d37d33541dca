// demo_agent.hpp - the agent the demo runs: started, N thoughts, one tool call, completed.
// It stands in for a real model; its events always follow the grammar (uniws::agent_run).
#pragma once

#include "server_state.hpp"

#include <boost/asio.hpp>

#include <chrono>
#include <cstddef>
#include <string>
#include <utility>

namespace golden_path {

using uniws::json_text;

inline net::awaitable<void> pause(std::chrono::milliseconds d) {
  if (d.count() == 0) co_return;
  net::steady_timer timer(co_await net::this_coro::executor, d);
  co_await timer.async_wait(net::use_awaitable);
}

// Parameters by value: the coroutine outlives the caller's frame.
inline net::awaitable<void> demo_agent(manager_ref mgr, std::string thread_id, std::string run_id, std::string text,
                                       int steps, std::size_t pad, std::chrono::milliseconds delay) {
  auto run = mgr.start_run(thread_id, run_id, json_text::object({{"message", json_text::string(text)}}));
  for (int i = 1; i <= steps; ++i) {
    co_await pause(delay);
    run.thinking(json_text::object({{"step", json_text::number(i)},
                                       {"text", json_text::string("thinking about: " + text)},
                                       {"pad", json_text::string(std::string(pad, '.'))}}));
  }
  co_await pause(delay);
  auto call = std::move(run).execute_tool("echo", json_text::object({{"input", json_text::string(text)}}));
  co_await pause(delay);
  auto after = std::move(call).finish(json_text::string(text));
  co_await pause(delay);
  std::move(after).complete("You said: " + text);
}

}  // namespace golden_path
