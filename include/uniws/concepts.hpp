// uniws/concepts.hpp - the concepts that constrain every public template.
#pragma once

#include <uniws/message.hpp>

#include <concepts>
#include <coroutine>
#include <cstdint>
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

// The three members the language calls on an awaiter.
template <class T>
concept awaiter = requires(T&& a, std::coroutine_handle<> h) {
  { static_cast<T&&>(a).await_ready() } -> std::convertible_to<bool>;
  { static_cast<T&&>(a).await_suspend(h) } -> await_suspend_result;
  static_cast<T&&>(a).await_resume();
};

// Mirrors the language's lookup: member operator co_await, then a free one, then the object itself.
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

// ---- connections ----

/// Identifies a connection within its user's manager.
using connection_id = std::uint64_t;

/// WebSocket close codes the library uses (RFC 6455, section 7.4.1).
enum class close_code : std::uint16_t {
  normal = 1000,
  going_away = 1001,
  policy_violation = 1008,
  message_too_big = 1009,
  try_again_later = 1013,
};

/// What a non-blocking send did.
enum class send_result : std::uint8_t {
  queued,       // accepted for delivery
  dropped,      // accepted, but the queue was full: a message (this or an older one) was dropped and counted
  closed,       // refused: the connection is closed
  closed_slow,  // refused: the queue was full and the policy closed the connection as a slow consumer
};

/// A live client connection as the manager sees it: an id, a send that never blocks, and a
/// close. Its transport (a WebSocket session, a test double) does the actual I/O.
template <class C>
concept connection = requires(C& c, const C& cc, message m, close_code code) {
  { cc.id() } noexcept -> std::convertible_to<connection_id>;
  { c.try_send(std::move(m)) } -> std::same_as<send_result>;
  c.close(code);
};

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
