// uniws/task.hpp - task<T>: a lazy coroutine that resumes its awaiter by symmetric transfer.
#pragma once

#include <uniws/concepts.hpp>
#include <uniws/detail/coroutine_result.hpp>
#include <uniws/detail/frame_allocator.hpp>

#include <coroutine>
#include <type_traits>
#include <utility>

namespace uniws {

template <class T = void>
class task;

namespace detail {

template <class>
inline constexpr bool always_false = false;

class task_promise_base : public recycled_frame {
 public:
  struct final_awaiter {
    constexpr bool await_ready() const noexcept { return false; }
    /// Symmetric transfer: the awaiter resumes as a tail call, so a synchronous chain of
    /// co_awaits does not grow the stack (given an optimiser that emits the tail call).
    template <class Promise>
    std::coroutine_handle<> await_suspend(std::coroutine_handle<Promise> self) const noexcept {
      return self.promise().continuation_;
    }
    constexpr void await_resume() const noexcept {}
  };

  constexpr std::suspend_always initial_suspend() const noexcept { return {}; }
  constexpr final_awaiter final_suspend() const noexcept { return {}; }

  template <class A>
    requires awaitable<A> || has_member_co_await<A> || has_free_co_await<A>
  constexpr A&& await_transform(A&& a) const noexcept {
    return static_cast<A&&>(a);
  }

  template <class A>
    requires(!(awaitable<A> || has_member_co_await<A> || has_free_co_await<A>))
  auto await_transform(A&&) const noexcept {
    static_assert(always_false<A>,
                  "uniws::task: co_await was applied to a value, not an awaitable. Only an awaitable "
                  "(uniws::task, or a type with operator co_await or await_ready/await_suspend/"
                  "await_resume) can be co_awaited; if you already have the value, drop the co_await.");
    return std::suspend_never{};
  }

  void set_continuation(std::coroutine_handle<> c) noexcept { continuation_ = c; }

 private:
  std::coroutine_handle<> continuation_;  ///< set by the awaiter before the body first runs
};

template <class T>
class task_promise final : public task_promise_base, public promise_result<T> {
 public:
  task<T> get_return_object() noexcept;
};

}  // namespace detail

/// A lazy coroutine producing T (a value, a reference, void, or a move-only type).
/// It starts when awaited, resumes its awaiter by symmetric transfer, and rethrows what its
/// body threw. Destroying a task that was never awaited frees its frame.
template <class T>
class [[nodiscard(
    "uniws::task is lazy: nothing runs until you co_await it (or hand it to sync_wait / when_all)")]] task {
 public:
  /// The coroutine's promise.
  using promise_type = detail::task_promise<T>;
  /// What co_await gives.
  using value_type = T;

  task() noexcept = default;
  /// Takes the coroutine over; `other` is empty after.
  task(task&& other) noexcept : handle_(std::exchange(other.handle_, {})) {}
  /// Destroys its own coroutine, then takes `other`'s.
  task& operator=(task&& other) noexcept {
    if (this != &other) {
      destroy();
      handle_ = std::exchange(other.handle_, {});
    }
    return *this;
  }
  task(const task&) = delete;
  task& operator=(const task&) = delete;
  ~task() { destroy(); }

  /// True once the body has finished (or the task is empty).
  [[nodiscard]] bool is_ready() const noexcept { return !handle_ || handle_.done(); }
  /// Whether it holds a coroutine.
  [[nodiscard]] bool valid() const noexcept { return static_cast<bool>(handle_); }

  /// A task is not its result: `t->member` is the mistake of forgetting to co_await it.
  template <class U = T>
  void operator->() const {
    static_assert(detail::always_false<U>,
                  "uniws::task has no members of its result: co_await the task first, e.g. "
                  "`auto r = co_await t;` and then use r.");
  }

  /// Awaiting an lvalue task yields its result by reference; an rvalue task moves it out.
  auto operator co_await() & noexcept { return awaiter<false>{handle_}; }
  /// Starts the coroutine and resumes the awaiter when it finishes (symmetric transfer).
  auto operator co_await() && noexcept { return awaiter<true>{handle_}; }

 private:
  friend class detail::task_promise<T>;
  explicit task(std::coroutine_handle<promise_type> h) noexcept : handle_(h) {}

  template <bool Move>
  struct awaiter {
    std::coroutine_handle<promise_type> handle;

    // Not ready by default: a task is lazy, so the common case is a fresh one. An empty or
    // finished task is caught in await_suspend, which then resumes the awaiter at once.
    constexpr bool await_ready() const noexcept { return false; }
    std::coroutine_handle<> await_suspend(std::coroutine_handle<> awaiting) const noexcept {
      if (!handle || handle.done()) [[unlikely]]
        return awaiting;
      handle.promise().set_continuation(awaiting);
      return handle;
    }
    decltype(auto) await_resume() const {
      if (!handle) throw std::logic_error("uniws::task: co_await of an empty task");
      if constexpr (Move) {
        return std::move(handle.promise()).get();
      } else {
        return handle.promise().get();
      }
    }
  };

  void destroy() noexcept {
    if (handle_) handle_.destroy();
  }

  std::coroutine_handle<promise_type> handle_;
};

template <class T>
task<T> detail::task_promise<T>::get_return_object() noexcept {
  return task<T>{std::coroutine_handle<task_promise>::from_promise(*this)};
}

}  // namespace uniws
