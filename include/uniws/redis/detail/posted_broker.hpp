// uniws/redis/detail/posted_broker.hpp - what the Redis brokers' public faces share: each call
// is posted to the broker's executor, where its engine (`Derived::impl`) does the work; the
// counters are read where they are.
#pragma once

#include <uniws/broker.hpp>

#include <boost/asio/post.hpp>

#include <atomic>
#include <charconv>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>

namespace uniws::redis::detail {

/// A join's question to the store, waiting on the executor for its answer.
struct history_read {
  std::string user, thread;
  std::optional<std::uint64_t> after;
  history_receiver receiver;
};

/// CRTP: `Derived` holds `std::shared_ptr<impl> impl_`, whose `ex`, `receiver`, `stats`,
/// `connected` and `refused`, and whose add_subscription / drop_subscription / read / shut_down are used
/// here.
template <class Derived>
class posted_broker {
 public:
  void subscribe(std::string_view user) {
    auto& i = impl();
    boost::asio::post(i->ex, [i, user = std::string(user)] { i->add_subscription(user); });
  }
  void unsubscribe(std::string_view user) {
    auto& i = impl();
    boost::asio::post(i->ex, [i, user = std::string(user)] { i->drop_subscription(user); });
  }
  void set_receiver(broker_receiver r) { impl()->receiver = std::move(r); }

  void read_history(std::string_view user, std::string_view thread, std::optional<std::uint64_t> after,
                    history_receiver r) {
    auto& i = impl();
    boost::asio::post(i->ex, [i, q = history_read{std::string(user), std::string(thread), after,
                                                  std::move(r)}]() mutable { i->read(std::move(q)); });
  }

  /// Disconnects and stops reconnecting (on the executor). Call it while the executor still
  /// runs, e.g. when the server starts to drain; the destructor only asks for it.
  void stop() {
    auto& i = impl();
    boost::asio::post(i->ex, [i] { i->shut_down(); });
  }

  [[nodiscard]] broker_stats stats() const {
    const auto& i = static_cast<const Derived&>(*this).impl_;
    broker_stats s = i->stats.snapshot();
    s.connected = i->connected.load(std::memory_order_acquire) ? 1 : 0;
    s.refused = i->refused.load(std::memory_order_relaxed) ? 1 : 0;
    return s;
  }

 protected:
  posted_broker() = default;
  posted_broker(posted_broker&&) noexcept = default;
  posted_broker& operator=(posted_broker&&) noexcept = default;
  ~posted_broker() = default;

 private:
  auto& impl() { return static_cast<Derived&>(*this).impl_; }
};

/// A channel message, "<seq> <thread length> <thread><envelope>", taken apart.
struct channel_message {
  std::uint64_t seq = 0;
  std::string_view thread, envelope;
};

inline std::optional<channel_message> parse_channel_message(std::string_view payload) {
  channel_message m;
  std::size_t thread_length = 0;
  auto r1 = std::from_chars(payload.data(), payload.data() + payload.size(), m.seq);
  if (r1.ec != std::errc() || r1.ptr == payload.data() + payload.size()) return std::nullopt;
  payload.remove_prefix(static_cast<std::size_t>(r1.ptr - payload.data()) + 1);
  auto r2 = std::from_chars(payload.data(), payload.data() + payload.size(), thread_length);
  if (r2.ec != std::errc() || r2.ptr == payload.data() + payload.size()) return std::nullopt;
  payload.remove_prefix(static_cast<std::size_t>(r2.ptr - payload.data()) + 1);
  if (payload.size() < thread_length) return std::nullopt;
  m.thread = payload.substr(0, thread_length);
  m.envelope = payload.substr(thread_length);
  return m;
}

}  // namespace uniws::redis::detail
