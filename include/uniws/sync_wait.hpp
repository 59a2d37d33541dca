// uniws/sync_wait.hpp - sync_wait(awaitable) drives an awaitable from plain code;
// when_all(...) awaits several at once.
#pragma once

#include <uniws/concepts.hpp>
#include <uniws/detail/coroutine_result.hpp>
#include <uniws/detail/frame_allocator.hpp>
#include <uniws/task.hpp>

#include <atomic>
#include <condition_variable>
#include <coroutine>
#include <cstddef>
#include <functional>
#include <memory>
#include <mutex>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

namespace uniws {
namespace detail {

/// Mutex + condition variable rather than an atomic flag: the signalling thread holds the
/// lock while it notifies, so the waiter cannot return and destroy the event under it.
class sync_wait_event {
 public:
  void set() noexcept {
    std::lock_guard lock(mutex_);
    set_ = true;
    cv_.notify_one();
  }
  void wait() {
    std::unique_lock lock(mutex_);
    cv_.wait(lock, [this] { return set_; });
  }

 private:
  std::mutex mutex_;
  std::condition_variable cv_;
  bool set_ = false;
};

template <class R>
class sync_wait_driver {
 public:
  struct promise_type : promise_result<R> {
    sync_wait_event* event = nullptr;

    sync_wait_driver get_return_object() noexcept {
      return sync_wait_driver{std::coroutine_handle<promise_type>::from_promise(*this)};
    }
    std::suspend_always initial_suspend() const noexcept { return {}; }
    auto final_suspend() const noexcept {
      struct signal_awaiter {
        bool await_ready() const noexcept { return false; }
        void await_suspend(std::coroutine_handle<promise_type> self) const noexcept {
          self.promise().event->set();
        }
        void await_resume() const noexcept {}
      };
      return signal_awaiter{};
    }
  };

  sync_wait_driver(sync_wait_driver&& other) noexcept : handle_(std::exchange(other.handle_, {})) {}
  sync_wait_driver& operator=(sync_wait_driver&&) = delete;
  ~sync_wait_driver() {
    if (handle_) handle_.destroy();
  }

  decltype(auto) run() {
    sync_wait_event event;
    handle_.promise().event = &event;
    handle_.resume();
    event.wait();
    return std::move(handle_.promise()).get();
  }

 private:
  explicit sync_wait_driver(std::coroutine_handle<promise_type> h) noexcept : handle_(h) {}
  std::coroutine_handle<promise_type> handle_;
};

/// Takes a pointer, not a reference: the awaitable lives in sync_wait's caller, which blocks
/// until this coroutine has finished, so the pointee outlives every use.
template <class R, class A>
sync_wait_driver<R> make_sync_wait_driver(std::remove_reference_t<A>* a) {
  if constexpr (std::is_void_v<R>) {
    co_await std::forward<A>(*a);
  } else {
    co_return co_await std::forward<A>(*a);
  }
}

// ---- when_all ----

struct when_all_latch {
  explicit when_all_latch(std::size_t children) noexcept : count(children + 1) {}
  std::atomic<std::size_t> count;  ///< children + the awaiting coroutine's own arrival
  std::coroutine_handle<> awaiting;
};

template <class R>
class when_all_child {
 public:
  struct promise_type : recycled_frame, promise_result<R> {
    when_all_latch* latch = nullptr;

    when_all_child get_return_object() noexcept {
      return when_all_child{std::coroutine_handle<promise_type>::from_promise(*this)};
    }
    std::suspend_always initial_suspend() const noexcept { return {}; }
    auto final_suspend() const noexcept {
      struct arrive_awaiter {
        bool await_ready() const noexcept { return false; }
        std::coroutine_handle<> await_suspend(std::coroutine_handle<promise_type> self) const noexcept {
          when_all_latch& latch = *self.promise().latch;
          if (latch.count.fetch_sub(1, std::memory_order_acq_rel) == 1) return latch.awaiting;
          return std::noop_coroutine();
        }
        void await_resume() const noexcept {}
      };
      return arrive_awaiter{};
    }
  };

  when_all_child(when_all_child&& other) noexcept : handle_(std::exchange(other.handle_, {})) {}
  when_all_child& operator=(when_all_child&&) = delete;
  ~when_all_child() {
    if (handle_) handle_.destroy();
  }

  void start(when_all_latch& latch) noexcept {
    handle_.promise().latch = &latch;
    handle_.resume();
  }
  void rethrow_if_failed() const { handle_.promise().rethrow_if_failed(); }
  decltype(auto) take() {
    if constexpr (std::is_void_v<R>) {
      return std::monostate{};
    } else {
      return std::move(handle_.promise()).get();
    }
  }

 private:
  explicit when_all_child(std::coroutine_handle<promise_type> h) noexcept : handle_(h) {}
  std::coroutine_handle<promise_type> handle_;
};

template <class R, class A>
when_all_child<R> make_when_all_child(A a) {
  if constexpr (std::is_void_v<R>) {
    co_await std::move(a);
  } else {
    co_return co_await std::move(a);
  }
}

/// Starts every child, then suspends until the last one arrives. If all of them finished
/// synchronously the awaiting coroutine's own arrival is the last and it does not suspend.
/// Copyable on purpose (g++ 12 may copy an awaiter); the latch it points to stays put.
template <class StartAll>
class when_all_barrier {
 public:
  when_all_barrier(when_all_latch& latch, StartAll start_all)
      : latch_(&latch), start_all_(std::move(start_all)) {}
  bool await_ready() const noexcept { return false; }
  bool await_suspend(std::coroutine_handle<> awaiting) {
    latch_->awaiting = awaiting;
    start_all_(*latch_);
    return latch_->count.fetch_sub(1, std::memory_order_acq_rel) > 1;
  }
  void await_resume() const noexcept {}

 private:
  when_all_latch* latch_;
  StartAll start_all_;
};

/// What when_all yields for a child whose result type is R.
template <class R>
using when_all_value_t =
    std::conditional_t<std::is_void_v<R>, std::monostate,
                       std::conditional_t<std::is_lvalue_reference_v<R>, R, std::remove_cvref_t<R>>>;

/// What the range form of when_all yields per element (a vector cannot hold references).
template <class R>
using when_all_element_t =
    std::conditional_t<std::is_lvalue_reference_v<R>, std::reference_wrapper<std::remove_reference_t<R>>,
                       when_all_value_t<R>>;

}  // namespace detail

/// Blocks the calling thread until `a` completes (on any thread) and returns its result,
/// or rethrows its exception.
template <awaitable A>
decltype(auto) sync_wait(A&& a) {
  using result = await_result_t<A>;
  return detail::make_sync_wait_driver<result, A>(std::addressof(a)).run();
}

/// Runs every awaitable concurrently and completes when all have; yields their results as a
/// tuple (void results as std::monostate). If any failed, rethrows the first failure in
/// argument order once all have finished.
template <awaitable... As>
task<std::tuple<detail::when_all_value_t<await_result_t<As>>...>> when_all(As... awaitables) {
  auto children = std::tuple{detail::make_when_all_child<await_result_t<As>>(std::move(awaitables))...};
  detail::when_all_latch latch(sizeof...(As));
  co_await detail::when_all_barrier(latch, [&children](detail::when_all_latch& l) {
    std::apply([&l](auto&... child) { (child.start(l), ...); }, children);
  });
  co_return std::apply(
      [](auto&... child) {
        (child.rethrow_if_failed(), ...);
        return std::tuple<detail::when_all_value_t<await_result_t<As>>...>{child.take()...};
      },
      children);
}

/// The range form: a vector of results in input order (nothing for void awaitables;
/// std::reference_wrapper for reference results).
template <awaitable A, class R = await_result_t<A>>
auto when_all(std::vector<A> awaitables)
    -> task<std::conditional_t<std::is_void_v<R>, void, std::vector<detail::when_all_element_t<R>>>> {
  std::vector<detail::when_all_child<R>> children;
  children.reserve(awaitables.size());
  for (A& a : awaitables) children.push_back(detail::make_when_all_child<R>(std::move(a)));
  detail::when_all_latch latch(children.size());
  co_await detail::when_all_barrier(latch, [&children](detail::when_all_latch& l) {
    for (auto& child : children) child.start(l);
  });
  for (auto& child : children) child.rethrow_if_failed();
  if constexpr (!std::is_void_v<R>) {
    std::vector<detail::when_all_element_t<R>> results;
    results.reserve(children.size());
    for (auto& child : children) results.push_back(child.take());
    co_return results;
  }
}

}  // namespace uniws
