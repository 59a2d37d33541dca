// uniws/testing.hpp - test doubles for your own tests, like Beast's test stream.
//
// memory_connection is a uniws::connection that keeps what it was sent in memory. It can
// act as a client that reads everything at once (the default), a slow client that stops
// reading (messages pile up in its bounded send_queue, where the slow-consumer policy
// applies), or a closed one.
#pragma once

#include <uniws/concepts.hpp>
#include <uniws/message.hpp>
#include <uniws/send_queue.hpp>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

namespace uniws::testing {

class memory_connection {
 public:
  explicit memory_connection(connection_id id, send_queue_limits limits = {}) : id_(id), queue_(limits) {}
  memory_connection(const memory_connection&) = delete;
  memory_connection& operator=(const memory_connection&) = delete;

  [[nodiscard]] connection_id id() const noexcept { return id_; }

  send_result try_send(message m) {
    lock_guard lock(lock_);
    if (close_code_) return send_result::closed;
    if (!slow_ && queue_.empty()) {  // a reader that keeps up: straight to what it has read
      received_.push_back(std::move(m));
      return send_result::queued;
    }
    const send_result r = queue_.push(std::move(m));
    if (r == send_result::closed_slow) {
      close_code_ = queue_.limits().slow_close_code;
      return r;
    }
    if (!slow_) drain_locked();
    return r;
  }

  void close(close_code code) {
    lock_guard lock(lock_);
    if (!close_code_) close_code_ = code;
    queue_.close();
  }

  /// A slow client stops reading: messages stay queued until drain() or set_slow(false).
  void set_slow(bool slow) {
    lock_guard lock(lock_);
    slow_ = slow;
    if (!slow_) drain_locked();
  }

  /// The client reads everything queued.
  void drain() {
    lock_guard lock(lock_);
    drain_locked();
  }

  /// Reserves room for received messages, so recording allocates nothing (benchmarks).
  void reserve(std::size_t n) {
    lock_guard lock(lock_);
    received_.reserve(n);
  }

  /// Everything the client has read so far, in order.
  [[nodiscard]] std::vector<message> received() const {
    lock_guard lock(lock_);
    return received_;
  }
  [[nodiscard]] std::size_t received_count() const {
    lock_guard lock(lock_);
    return received_.size();
  }
  void clear_received() {
    lock_guard lock(lock_);
    received_.clear();
  }
  [[nodiscard]] std::size_t queued() const {
    lock_guard lock(lock_);
    return queue_.size();
  }
  [[nodiscard]] std::size_t queued_bytes() const {
    lock_guard lock(lock_);
    return queue_.bytes();
  }
  [[nodiscard]] std::uint64_t dropped() const {
    lock_guard lock(lock_);
    return queue_.dropped();
  }
  /// The close code, once closed (by close() or by the slow-consumer policy).
  [[nodiscard]] std::optional<close_code> closed_with() const {
    lock_guard lock(lock_);
    return close_code_;
  }

 private:
  // A test double's lock: one uncontended exchange, so benchmarks measure the manager.
  class spin_lock {
   public:
    void lock() noexcept {
      while (locked_.exchange(true, std::memory_order_acquire)) {
        while (locked_.load(std::memory_order_relaxed)) std::this_thread::yield();
      }
    }
    void unlock() noexcept { locked_.store(false, std::memory_order_release); }

   private:
    std::atomic<bool> locked_{false};
  };
  using lock_guard = std::lock_guard<spin_lock>;

  void drain_locked() {
    while (!queue_.empty()) {
      received_.push_back(queue_.front());
      queue_.pop();
    }
  }

  const connection_id id_;
  mutable spin_lock lock_;
  send_queue queue_;
  std::vector<message> received_;
  std::optional<close_code> close_code_;
  bool slow_ = false;
};

static_assert(connection<memory_connection>);

}  // namespace uniws::testing
