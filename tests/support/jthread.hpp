// tests/support/jthread.hpp - std::jthread where the standard library has it (libc++ 16 does not),
// else a joining std::thread with the same use in these tests.
#pragma once

#include <thread>
#include <utility>

namespace uniws_test {

#if defined(__cpp_lib_jthread)
using jthread = std::jthread;
#else
class jthread {
 public:
  jthread() noexcept = default;
  template <class F, class... Args>
  explicit jthread(F&& f, Args&&... args) : thread_(std::forward<F>(f), std::forward<Args>(args)...) {}
  jthread(jthread&&) noexcept = default;
  jthread& operator=(jthread&& other) noexcept {
    if (thread_.joinable()) thread_.join();
    thread_ = std::move(other.thread_);
    return *this;
  }
  ~jthread() {
    if (thread_.joinable()) thread_.join();
  }
  void join() { thread_.join(); }
  [[nodiscard]] bool joinable() const noexcept { return thread_.joinable(); }

 private:
  std::thread thread_;
};
#endif

}  // namespace uniws_test
