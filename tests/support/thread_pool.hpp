// tests/support/thread_pool.hpp - a small pool whose schedule() awaitable moves a coroutine onto one
// of its threads: lets a test run many coroutines truly concurrently.
#pragma once

#include "jthread.hpp"
#include <condition_variable>
#include <coroutine>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

namespace uniws_test {

class thread_pool {
 public:
  explicit thread_pool(unsigned threads) {
    for (unsigned i = 0; i < threads; ++i) workers_.emplace_back([this] { run(); });
  }
  thread_pool(const thread_pool&) = delete;
  thread_pool& operator=(const thread_pool&) = delete;
  ~thread_pool() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    cv_.notify_all();
  }

  auto schedule() noexcept {
    struct awaiter {
      thread_pool* pool;
      bool await_ready() const noexcept { return false; }
      void await_suspend(std::coroutine_handle<> h) const { pool->post(h); }
      void await_resume() const noexcept {}
    };
    return awaiter{this};
  }

 private:
  void post(std::coroutine_handle<> h) {
    {
      std::lock_guard lock(mutex_);
      queue_.push_back(h);
    }
    cv_.notify_one();
  }

  void run() {
    for (;;) {
      std::coroutine_handle<> h;
      {
        std::unique_lock lock(mutex_);
        cv_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
        if (queue_.empty()) return;
        h = queue_.front();
        queue_.pop_front();
      }
      h.resume();
    }
  }

  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<std::coroutine_handle<>> queue_;
  bool stopping_ = false;
  std::vector<uniws_test::jthread> workers_;  // last: joined first, while the queue still exists
};

}  // namespace uniws_test
