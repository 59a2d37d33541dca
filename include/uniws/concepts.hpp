// uniws/concepts.hpp - the coroutine concepts (awaitable, awaitable_of) and the ones a factory
// is generic over (user_context, service_probe). The transport's are in uniws/connection.hpp.
#pragma once

#include <concepts>
#include <coroutine>
#include <string_view>
#include <type_traits>
#include <utility>

namespace uniws {
namespace detail {

template <class T>
concept has_member_co_await = requires(T&& t) { static_cast<T&&>(t).operator co_await(); };

template <class T>
concept has_free_co_await = requires(T&& t) { operator co_await(static_cast<T&&>(t)); };

template <class T>
concept await_suspend_result =
    std::same_as<T, void> || std::same_as<T, bool> || std::convertible_to<T, std::coroutine_handle<>>;

/// The three members the language calls on an awaiter.
template <class T>
concept awaiter = requires(T&& a, std::coroutine_handle<> h) {
  { static_cast<T&&>(a).await_ready() } -> std::convertible_to<bool>;
  { static_cast<T&&>(a).await_suspend(h) } -> await_suspend_result;
  static_cast<T&&>(a).await_resume();
};

/// Mirrors the language's lookup: member operator co_await, then a free one, then the object itself.
template <class T>
decltype(auto) get_awaiter(T&& t) {
  if constexpr (has_member_co_await<T>) {
    return static_cast<T&&>(t).operator co_await();
  } else if constexpr (has_free_co_await<T>) {
    return operator co_await(static_cast<T&&>(t));
  } else {
    return static_cast<T&&>(t);
  }
}

}  // namespace detail

/// Something `co_await` accepts in a coroutine whose promise adds no await_transform.
template <class T>
concept awaitable = requires(T&& t) {
  { detail::get_awaiter(static_cast<T&&>(t)) } -> detail::awaiter;
};

/// The type `co_await std::declval<T>()` produces.
template <awaitable T>
using await_result_t = decltype(detail::get_awaiter(std::declval<T>()).await_resume());

/// An awaitable whose result converts to R.
template <class T, class R>
concept awaitable_of = awaitable<T> && std::convertible_to<await_result_t<T>, R>;

/// Who is asking: anything that names its user.
template <class C>
concept user_context = requires(const C& c) {
  { c.user_id() } -> std::convertible_to<std::string_view>;
};

/// An availability check for a service the managers depend on: check() returns an
/// awaitable of bool (true: available). It may also throw, which means unavailable.
template <class P>
concept service_probe = requires(P& p) {
  { p.check() } -> awaitable_of<bool>;
};

}  // namespace uniws
