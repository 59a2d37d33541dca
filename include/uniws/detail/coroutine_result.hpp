// uniws/detail/coroutine_result.hpp - the value-or-exception a finished coroutine leaves behind.
// Shared by task, sync_wait and when_all so each promise stores results the same way.
#pragma once

#include <concepts>
#include <exception>
#include <memory>
#include <stdexcept>
#include <type_traits>
#include <utility>
#include <new>

namespace uniws::detail {

/// How a coroutine that produces R keeps it: references as pointers, rvalue references and
/// const prvalues as plain values.
template <class R>
using stored_t = std::conditional_t<std::is_lvalue_reference_v<R>,
                                    std::add_pointer_t<std::remove_reference_t<R>>, std::remove_cvref_t<R>>;

template <class R>
class coroutine_result {
 public:
  coroutine_result() noexcept {}
  coroutine_result(const coroutine_result&) = delete;
  coroutine_result& operator=(const coroutine_result&) = delete;
  ~coroutine_result() {
    if (state_ == state::value) {
      value_.~stored_t<R>();
    } else if (state_ == state::exception) {
      exception_.~exception_ptr();
    }
  }

  void unhandled_exception() noexcept {
    ::new (static_cast<void*>(std::addressof(exception_))) std::exception_ptr(std::current_exception());
    state_ = state::exception;
  }

  void rethrow_if_failed() const {
    if (state_ != state::value) [[unlikely]]
      rethrow();
  }

  /// The result as an lvalue (references stay references).
  decltype(auto) get() & {
    rethrow_if_failed();
    if constexpr (std::is_lvalue_reference_v<R>) {
      return static_cast<R>(*value_);
    } else {
      return static_cast<stored_t<R>&>(value_);
    }
  }

  /// The result moved out (references stay references).
  decltype(auto) get() && {
    rethrow_if_failed();
    if constexpr (std::is_lvalue_reference_v<R>) {
      return static_cast<R>(*value_);
    } else {
      return stored_t<R>(std::move(value_));
    }
  }

 protected:
  template <class U>
  void set_value(U&& v) {
    if constexpr (std::is_lvalue_reference_v<R>) {
      value_ = std::addressof(v);
    } else {
      ::new (static_cast<void*>(std::addressof(value_))) stored_t<R>(std::forward<U>(v));
    }
    state_ = state::value;
  }

 private:
  [[noreturn]] void rethrow() const {
    if (state_ == state::exception) std::rethrow_exception(exception_);
    throw std::logic_error("uniws: result read from a coroutine that has not finished");
  }

  enum class state : unsigned char { empty, value, exception };
  // A hand-made union rather than std::variant: the hot path writes one value and a state byte.
  union {
    stored_t<R> value_;
    std::exception_ptr exception_;
  };
  state state_ = state::empty;
};

template <>
class coroutine_result<void> {
 public:
  void unhandled_exception() noexcept { exception_ = std::current_exception(); }
  void rethrow_if_failed() const {
    if (exception_) std::rethrow_exception(exception_);
  }
  void get() const { rethrow_if_failed(); }

 private:
  std::exception_ptr exception_;
};

/// Adds return_value / return_void (a promise may have only one of them).
template <class R>
class promise_result : public coroutine_result<R> {
 public:
  template <class U = R>
    requires std::convertible_to<U&&, R>
  void return_value(U&& v) noexcept(std::is_nothrow_constructible_v<stored_t<R>, U&&> ||
                                    std::is_lvalue_reference_v<R>) {
    this->set_value(std::forward<U>(v));
  }
};

template <>
class promise_result<void> : public coroutine_result<void> {
 public:
  void return_void() const noexcept {}
};

}  // namespace uniws::detail
