// uniws/history.hpp - a user's recent events, kept so that a client that lost its connection
// can resume where it stopped: the epoch that names the history, the point a client resumes
// from, the answer to a join, and the bounded ring of already-encoded events.
//
// Contract: an event stays in the ring until it is older than max_age or pushed out by
// max_events or max_bytes; the ring shares each event's buffer with the fan-out (no copy).
// A resume from (epoch, after_seq) is complete only if the epoch is the ring's and no event
// after after_seq has left the ring; otherwise the answer is "not recovered", never a replay
// with a hole in it.
#pragma once

#include <uniws/message.hpp>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace uniws {

/// What a user's history keeps for resumes: the newest events within every bound.
struct history_options {
  std::size_t max_events = 1024;  ///< 0: no history, every resume is "not recovered"
  /// Older events are dropped.
  std::chrono::seconds max_age{300};
  std::size_t max_bytes = std::size_t{1} << 20;  ///< events' bytes and their thread ids'
};

/// What a user's history can hold at most, in bytes of heap: each event's buffer and thread id
/// (max_bytes) plus a fixed cost per entry (the ring's slot, the buffer's header).
[[nodiscard]] constexpr std::size_t history_memory_bound(const history_options& o) noexcept {
  constexpr std::size_t per_entry =
      112;  // the entry's slot in the ring (56), the buffer's header and malloc's own, rounded up
  return o.max_events * per_entry + o.max_bytes;
}

/// Names one history of one user: 128 random bits, new whenever that history starts afresh
/// (a new manager on a node, a new stream in a cluster's store). A seq means something only
/// together with its epoch.
class history_epoch {
 public:
  constexpr history_epoch() noexcept = default;

  /// 128 bits from a per-thread generator seeded once from std::random_device.
  static history_epoch random() {
    thread_local std::mt19937_64 bits = [] {
      std::random_device device;
      std::seed_seq seed{device(), device(), device(), device()};
      return std::mt19937_64(seed);
    }();
    history_epoch e;
    e.words_ = {bits(), bits()};
    return e;
  }

  /// 32 lower-case hex digits, the wire form.
  [[nodiscard]] std::string to_string() const {
    std::string out(32, '0');
    constexpr char digits[] = "0123456789abcdef";
    for (std::size_t i = 0; i < 32; ++i) out[i] = digits[(words_[i / 16] >> (60 - 4 * (i % 16))) & 0xf];
    return out;
  }

  /// The wire form back; nullopt unless exactly 32 hex digits.
  static std::optional<history_epoch> parse(std::string_view text) noexcept {
    if (text.size() != 32) return std::nullopt;
    history_epoch e;
    for (std::size_t i = 0; i < 32; ++i) {
      const char c = text[i];
      const int v = c >= '0' && c <= '9'   ? c - '0'
                    : c >= 'a' && c <= 'f' ? c - 'a' + 10
                    : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                           : -1;
      if (v < 0) return std::nullopt;
      e.words_[i / 16] = (e.words_[i / 16] << 4) | static_cast<std::uint64_t>(v);
    }
    return e;
  }

  /// Whether this is the empty epoch (no history yet).
  [[nodiscard]] constexpr bool empty() const noexcept { return words_[0] == 0 && words_[1] == 0; }
  /// Epochs are equal when their bytes are.
  friend constexpr bool operator==(const history_epoch&, const history_epoch&) noexcept = default;

 private:
  std::array<std::uint64_t, 2> words_{};
};

/// Where a client resumes: the epoch and the last seq it received.
struct resume_point {
  /// The epoch of the history it resumes from.
  history_epoch epoch;
  /// The last seq the client got; it gets the events after it.
  std::uint64_t after_seq = 0;
};

enum class join_status : std::uint8_t {
  refused,           ///< unknown connection or bad thread id: nothing was sent
  too_many_threads,  ///< the connection has joined manager_options::max_threads_per_connection
  joined,            ///< a plain join: `joined` was queued, live events follow
  recovered,         ///< the missed events, then `joined` (recovered), then live events
  not_recovered,     ///< no replay: `joined` (not recovered) was queued, live events follow
  pending,           ///< a cluster's store is asked: the answer reaches the connection when it comes
};

/// What join_thread did. The answer itself (`joined`, after any replay) is already queued to
/// the connection; this is for the caller's logs and tests.
struct [[nodiscard(
    "a join may be refused (unknown connection, bad thread id, too many threads): check the "
    "join_result")]] join_result {
  /// What happened.
  join_status status = join_status::refused;
  /// The history's epoch: a client resumes with it.
  history_epoch epoch;
  /// The user's last seq when the connection went live.
  std::uint64_t seq = 0;  // the user's last seq when the connection went live
  /// Events replayed to the connection.
  std::size_t replayed = 0;  // events replayed to the connection
  /// True unless refused (refused or too_many_threads).
  explicit operator bool() const noexcept {
    return status != join_status::refused && status != join_status::too_many_threads;
  }
};

namespace detail {

/// The ring itself. Not synchronized: the manager guards it with its emit lock.
class event_history {
 public:
  using clock = std::chrono::steady_clock;

  explicit event_history(history_options options) : options_(options), epoch_(history_epoch::random()) {}

  [[nodiscard]] const history_epoch& epoch() const noexcept { return epoch_; }

  /// Keeps the event `seq` of `thread`, then drops what is past a bound.
  void push(std::uint64_t seq, std::string_view thread, const message& m, clock::time_point now) {
    if (options_.max_events == 0) {
      gone_through_ = seq;
      return;
    }
    if (count_ == ring_.size()) {
      if (ring_.size() < options_.max_events)
        grow(std::min(std::max<std::size_t>(ring_.size() * 2, 8), options_.max_events));
      else
        pop();
    }
    entry& e = at(count_++);
    e = entry{seq, std::string(thread), m, now};
    bytes_ += cost(e);
    while (count_ > 0 && bytes_ > options_.max_bytes) pop();
    expire(now);
  }

  /// Calls `fn(message)` for each event of `thread` after `after_seq`, oldest first, and
  /// returns how many; nullopt (and no call) unless the ring holds every event of the user
  /// after `after_seq` up to `last_seq`.
  template <class Fn>
  std::optional<std::size_t> replay(std::uint64_t after_seq, std::uint64_t last_seq, std::string_view thread,
                                    clock::time_point now, Fn&& fn) {
    expire(now);
    if (after_seq < gone_through_ || after_seq > last_seq) return std::nullopt;
    std::size_t n = 0;
    // Entries are in seq order, one seq after the other: skip to the first one after after_seq.
    std::size_t i = 0;
    if (count_ > 0 && at(0).seq <= after_seq) {
      i = std::min(static_cast<std::size_t>(after_seq - at(0).seq) + 1, count_);
      while (i > 0 && at(i - 1).seq > after_seq) --i;  // in case seqs have gaps
    }
    for (; i < count_; ++i)
      if (const entry& e = at(i); e.seq > after_seq && e.thread == thread) {
        fn(e.m);
        ++n;
      }
    return n;
  }

  [[nodiscard]] std::size_t size() const noexcept { return count_; }
  [[nodiscard]] std::size_t bytes() const noexcept { return bytes_; }

 private:
  struct entry {
    std::uint64_t seq = 0;
    std::string thread;
    message m;
    clock::time_point kept_at;
  };
  static_assert(sizeof(entry) <= 56 || sizeof(void*) != 8, "history_memory_bound counts 56 bytes per entry");

  /// A thread id within the string's own storage costs nothing more.
  static std::size_t cost(const entry& e) noexcept {
    return e.m.size() + (e.thread.capacity() > 15 ? e.thread.capacity() + 1 : 0);
  }
  entry& at(std::size_t i) noexcept {  // i < ring_.size(): a subtraction, not a division
    const std::size_t slot = head_ + i;
    return ring_[slot < ring_.size() ? slot : slot - ring_.size()];
  }

  /// The ring grows by doubling up to max_events, so a user with few events holds a small one
  /// and a user with none holds none.
  void grow(std::size_t capacity) {
    std::vector<entry> bigger(capacity);
    for (std::size_t i = 0; i < count_; ++i) bigger[i] = std::move(at(i));
    ring_ = std::move(bigger);
    head_ = 0;
  }
  void pop() {
    entry& oldest = at(0);
    gone_through_ = oldest.seq;
    bytes_ -= cost(oldest);
    oldest = entry{};  // the message and the thread id go now, not when the slot is reused
    head_ = head_ + 1 == ring_.size() ? 0 : head_ + 1;
    --count_;
  }
  void expire(clock::time_point now) {
    while (count_ > 0 && now - at(0).kept_at > options_.max_age) pop();
  }

  history_options options_;
  history_epoch epoch_;
  std::vector<entry> ring_;  ///< count_ entries from head_, oldest first
  std::size_t head_ = 0, count_ = 0;
  std::size_t bytes_ = 0;
  std::uint64_t gone_through_ = 0;  ///< the last seq no longer held (0: none lost yet)
};

}  // namespace detail
}  // namespace uniws
