// uniws/send_queue.hpp - a connection's outbound queue, bounded in messages and in bytes,
// with the slow-consumer policy applied when it is full. Nothing is dropped uncounted.
#pragma once

#include <uniws/connection.hpp>
#include <uniws/message.hpp>

#include <algorithm>
#include <atomic>
#include <span>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

namespace uniws {

/// What a full queue does with one more message.
enum class slow_consumer_policy : std::uint8_t {
  drop_oldest,  ///< make room by dropping the oldest queued messages (counted)
  close,        ///< refuse it and close the connection with slow_close_code
};

/// The policies' names, as flags and /config spell them: one table read both ways.
inline constexpr std::pair<slow_consumer_policy, std::string_view> slow_consumer_policy_names[] = {
    {slow_consumer_policy::drop_oldest, "drop-oldest"},
    {slow_consumer_policy::close, "close"},
};

[[nodiscard]] constexpr std::string_view to_string(slow_consumer_policy p) noexcept {
  for (const auto& [policy, name] : slow_consumer_policy_names)
    if (policy == p) return name;
  return "?";
}

[[nodiscard]] constexpr std::optional<slow_consumer_policy> parse_slow_consumer_policy(
    std::string_view name) noexcept {
  for (const auto& [policy, n] : slow_consumer_policy_names)
    if (n == name) return policy;
  return std::nullopt;
}

/// Bytes queued by many queues together (a server's connections) under one bound. Past it, a
/// queue that has a backlog is treated as full (its slow-consumer policy applies to it) while a
/// queue with none still takes the message: the readers that keep up are not punished for the
/// slow ones, and the total stays within max_bytes plus one message per queue. Thread-safe.
class queue_budget {
 public:
  /// A budget of `max_bytes` shared by many queues.
  explicit queue_budget(std::size_t max_bytes) noexcept : max_(max_bytes) {}
  queue_budget(const queue_budget&) = delete;
  queue_budget& operator=(const queue_budget&) = delete;

  /// Whether `n` more bytes fit.
  [[nodiscard]] bool has_room_for(std::size_t n) const noexcept {
    return bytes_.load(std::memory_order_relaxed) + n <= max_;
  }
  /// Bytes held by all queues on this budget now.
  [[nodiscard]] std::size_t bytes() const noexcept { return bytes_.load(std::memory_order_relaxed); }
  /// The bound.
  [[nodiscard]] std::size_t max_bytes() const noexcept { return max_; }
  /// A queue took `n` bytes.
  void add(std::size_t n) noexcept { bytes_.fetch_add(n, std::memory_order_relaxed); }
  /// A queue gave back `n` bytes.
  void release(std::size_t n) noexcept { bytes_.fetch_sub(n, std::memory_order_relaxed); }

 private:
  std::atomic<std::size_t> bytes_{0};
  const std::size_t max_;
};

/// The bound of one connection's send queue, and what happens past it.
struct send_queue_limits {
  /// Messages queued at most.
  std::size_t max_messages = 1024;
  /// Bytes queued at most.
  std::size_t max_bytes = std::size_t{8} << 20;
  /// What a full queue does with one more message.
  slow_consumer_policy policy = slow_consumer_policy::drop_oldest;
  close_code slow_close_code = close_code::try_again_later;  ///< 1013; 1008 is the other common choice
  queue_budget* budget = nullptr;  ///< shared by many queues; must outlive them (none: no shared bound)
};

/// Single-owner (not thread-safe): its connection serialises access, as a strand does.
/// The ring grows by doubling up to max_messages and shrink_to_fit() frees it once empty, so
/// an idle connection costs nothing (or the few slots its writer keeps).
class send_queue {
 public:
  /// An empty queue with these bounds (it allocates nothing yet).
  explicit send_queue(send_queue_limits limits = {}) : limits_(limits) {}
  send_queue(const send_queue&) = delete;  ///< its bytes are counted in the budget once
  send_queue& operator=(const send_queue&) = delete;
  ~send_queue() {
    if (limits_.budget) limits_.budget->release(bytes_);
  }

  /// Queues `m` under the limits. A message larger than max_bytes on its own can never be
  /// queued: it is dropped (counted) under drop_oldest, or closes the connection under close.
  send_result push(message m) {
    if (closed_) return send_result::closed;
    const bool fits_alone = fits(m.size());
    if (!fits_alone || full_for(m.size())) {
      if (limits_.policy == slow_consumer_policy::close) {
        closed_ = true;
        closed_as_slow_ = true;
        return send_result::closed_slow;
      }
      if (!fits_alone) {
        ++dropped_;
        return send_result::dropped;
      }
      while (full_for(m.size())) {
        pop();
        ++dropped_;
      }
      push_back(std::move(m));
      return send_result::dropped;
    }
    push_back(std::move(m));
    return send_result::queued;
  }

  /// Nothing queued.
  [[nodiscard]] bool empty() const noexcept { return count_ == 0; }
  /// Messages queued.
  [[nodiscard]] std::size_t size() const noexcept { return count_; }
  /// Bytes queued.
  [[nodiscard]] std::size_t bytes() const noexcept { return bytes_; }
  /// Messages dropped to stay within the bound, ever.
  [[nodiscard]] std::uint64_t dropped() const noexcept { return dropped_; }
  /// The queue was closed: it takes nothing more.
  [[nodiscard]] bool closed() const noexcept { return closed_; }
  /// It was closed by the close_connection policy (a consumer too slow).
  [[nodiscard]] bool closed_as_slow() const noexcept { return closed_as_slow_; }
  /// Its bounds.
  [[nodiscard]] const send_queue_limits& limits() const noexcept { return limits_; }
  /// Slots allocated: 0 for a queue that never held a message or was shrunk when empty.
  [[nodiscard]] std::size_t capacity() const noexcept { return ring_.size(); }

  /// The oldest queued message; the queue must not be empty.
  [[nodiscard]] const message& front() const noexcept { return ring_[head_]; }

  /// Moves up to `out.size()` of the oldest messages into `out`, oldest first; answers how many.
  std::size_t take_front(std::span<message> out) noexcept {
    const std::size_t n = std::min(out.size(), count_);
    std::size_t taken = 0;
    for (std::size_t i = 0; i < n; ++i) {
      taken += ring_[head_].size();
      out[i] = std::move(ring_[head_]);
      head_ = (head_ + 1) & (ring_.size() - 1);
    }
    count_ -= n;
    bytes_ -= taken;
    if (limits_.budget && taken != 0) limits_.budget->release(taken);  // once for them all
    return n;
  }

  /// Removes the oldest message; the queue must not be empty.
  void pop() noexcept {
    bytes_ -= ring_[head_].size();
    if (limits_.budget) limits_.budget->release(ring_[head_].size());
    ring_[head_] = message();
    head_ = (head_ + 1) & (ring_.size() - 1);
    --count_;
  }

  /// Whether a message of `size` bytes could be queued at all (the queue empty).
  [[nodiscard]] bool fits(std::size_t size) const noexcept {
    return size <= limits_.max_bytes && limits_.max_messages > 0;
  }

  /// Frees the ring if nothing is queued and it has more than `keep` slots (a writer calls this
  /// when it has flushed a backlog; a few slots kept spare an allocation per paced message).
  void shrink_to_fit(std::size_t keep = 0) noexcept {
    if (count_ != 0 || ring_.size() <= keep) return;
    ring_ = std::vector<message>();
    head_ = 0;
  }

  /// Refuses every later push (messages already queued stay, to be flushed).
  void close() noexcept { closed_ = true; }

 private:
  /// Whether `size` more bytes overflow this queue, or the shared budget while this queue has a
  /// backlog of its own.
  [[nodiscard]] bool full_for(std::size_t size) const noexcept {
    return count_ == limits_.max_messages || bytes_ + size > limits_.max_bytes ||
           (count_ > 0 && limits_.budget && !limits_.budget->has_room_for(size));
  }

  void push_back(message m) {
    if (count_ == ring_.size()) grow();
    ring_[(head_ + count_) & (ring_.size() - 1)] = std::move(m);
    const std::size_t size = ring_[(head_ + count_) & (ring_.size() - 1)].size();
    bytes_ += size;
    if (limits_.budget) limits_.budget->add(size);
    ++count_;
  }

  void grow() {
    std::vector<message> bigger(ring_.empty() ? 4 : ring_.size() * 2);
    for (std::size_t i = 0; i < count_; ++i) bigger[i] = std::move(ring_[(head_ + i) & (ring_.size() - 1)]);
    ring_ = std::move(bigger);
    head_ = 0;
  }

  send_queue_limits limits_;
  std::vector<message> ring_;  ///< power-of-two size
  std::size_t head_ = 0;
  std::size_t count_ = 0;
  std::size_t bytes_ = 0;
  std::uint64_t dropped_ = 0;
  bool closed_ = false;
  bool closed_as_slow_ = false;
};

}  // namespace uniws
