// uniws/beast/awaitable.hpp - the bridge between Asio's and uniws's coroutines:
//
//   boost::asio::awaitable<void> session(...) {
//     auto mgr = co_await uniws::beast::await_task(factory.get_websocket_manager_async(ctx));
//
// The task runs to completion wherever it completes; the asio coroutine is then resumed on
// its own executor. Exceptions propagate.
#pragma once

#include <uniws/task.hpp>

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/awaitable.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <concepts>
#include <coroutine>
#include <exception>
#include <type_traits>
#include <utility>

namespace uniws::beast {
namespace detail {

/// A coroutine that starts at once and frees itself when done: it runs one task and
/// hands the outcome to an Asio completion handler.
struct detached {
  struct promise_type {
    detached get_return_object() const noexcept { return {}; }
    std::suspend_never initial_suspend() const noexcept { return {}; }
    std::suspend_never final_suspend() const noexcept { return {}; }
    void return_void() const noexcept {}
    void unhandled_exception() const noexcept { std::terminate(); }  // the body catches everything
  };
};

template <class Handler, class... Args>
void complete_on_handler_executor(Handler handler, Args... args) {
  auto executor = boost::asio::get_associated_executor(handler);
  boost::asio::post(executor, [h = std::move(handler), ... a = std::move(args)]() mutable {
    std::move(h)(std::move(a)...);
  });
}

template <class T, class Handler>
detached run_task(task<T> t, Handler handler) {
  std::exception_ptr error;
  T value{};
  try {
    value = co_await std::move(t);
  } catch (...) {
    error = std::current_exception();
  }
  complete_on_handler_executor(std::move(handler), error, std::move(value));
}

template <class Handler>
detached run_void_task(task<void> t, Handler handler) {
  std::exception_ptr error;
  try {
    co_await std::move(t);
  } catch (...) {
    error = std::current_exception();
  }
  complete_on_handler_executor(std::move(handler), error);
}

}  // namespace detail

/// Awaits a uniws::task from an asio::awaitable coroutine. T must be default-constructible
/// (Asio's completion signature carries a value even when it carries an exception).
template <class T>
  requires std::is_void_v<T> || (std::default_initializable<T> && std::movable<T>)
boost::asio::awaitable<T> await_task(task<T> t) {
  if constexpr (std::is_void_v<T>) {
    co_await boost::asio::async_initiate<const boost::asio::use_awaitable_t<>&, void(std::exception_ptr)>(
        [](auto handler, task<void> inner) { detail::run_void_task(std::move(inner), std::move(handler)); },
        boost::asio::use_awaitable, std::move(t));
  } else {
    co_return co_await boost::asio::async_initiate<const boost::asio::use_awaitable_t<>&,
                                                   void(std::exception_ptr, T)>(
        [](auto handler, task<T> inner) { detail::run_task(std::move(inner), std::move(handler)); },
        boost::asio::use_awaitable, std::move(t));
  }
}

}  // namespace uniws::beast
