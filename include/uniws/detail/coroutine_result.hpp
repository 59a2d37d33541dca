// uniws/detail/coroutine_result.hpp - the value-or-exception a finished coroutine leaves behind.
// Shared by task, sync_wait and when_all so each promise stores results the same way.
#pragma once

#include <concepts>
#include <exception>
#include <memory>
#include <stdexcept>
#include <type_traits>
#include <utility>
#include <variant>

namespace uniws::detail {

/// How a coroutine that produces R keeps it: references as pointers, rvalue references and
/// const prvalues as plain values.
template <class R>
using stored_t = std::conditional_t<std::is_lvalue_reference_v<R>, std::add_pointer_t<std::remove_reference_t<R>>,
                                    std::remove_cvref_t<R>>;

template <class R>
class coroutine_result {
 public:
  void unhandled_exception() noexcept { state_.template emplace<2>(std::current_exception()); }

  void rethrow_if_failed() const {
    if (state_.index() == 2) std::rethrow_exception(std::get<2>(state_));
    if (state_.index() == 0) throw std::logic_error("uniws: result read from a coroutine that has not finished");
  }

  /// The result as an lvalue (references stay references).
  decltype(auto) get() & {
    rethrow_if_failed();
    if constexpr (std::is_lvalue_reference_v<R>) {
      return static_cast<R>(*std::get<1>(state_));
    } else {
      return static_cast<stored_t<R>&>(std::get<1>(state_));
    }
  }

  /// The result moved out (references stay references).
  decltype(auto) get() && {
    rethrow_if_failed();
    if constexpr (std::is_lvalue_reference_v<R>) {
      return static_cast<R>(*std::get<1>(state_));
    } else {
      return stored_t<R>(std::move(std::get<1>(state_)));
    }
  }

 protected:
  template <class U>
  void set_value(U&& v) {
    if constexpr (std::is_lvalue_reference_v<R>) {
      state_.template emplace<1>(std::addressof(v));
    } else {
      state_.template emplace<1>(std::forward<U>(v));
    }
  }

 private:
  std::variant<std::monostate, stored_t<R>, std::exception_ptr> state_;
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
