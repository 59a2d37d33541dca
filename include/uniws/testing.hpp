// uniws/testing.hpp - test doubles for your own tests, like Beast's test stream.
//
// memory_connection is a uniws::connection that keeps what it was sent in memory. It can
// act as a client that reads everything at once (the default), a slow client that stops
// reading (messages pile up in its bounded send_queue, where the slow-consumer policy
// applies), or a closed one.
//
// memory_bus is a cluster's broker in memory: node() gives each factory its endpoint (a
// uniws::broker); pump() delivers what was published, in order, to the subscribed nodes;
// set_down(true) makes publishing fail, as a broker that is unreachable does. The bus keeps
// each user's last `history_limit` events for resume; lose_history() forgets them all, as a
// store restarted without persistence does (the next answer names a new epoch).
#pragma once

#include <uniws/broker.hpp>
#include <uniws/connection.hpp>
#include <uniws/events.hpp>
#include <uniws/message.hpp>
#include <uniws/send_queue.hpp>

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

namespace uniws::testing {

/// A connection for tests: try_send queues into memory under the same bound and policy
/// as a real one, and what was sent can be read back.
class memory_connection {
 public:
  /// A connection `id` with a queue of `limits`.
  explicit memory_connection(connection_id id, send_queue_limits limits = {}) : id_(id), queue_(limits) {}
  memory_connection(const memory_connection&) = delete;
  memory_connection& operator=(const memory_connection&) = delete;

  /// Its id.
  [[nodiscard]] connection_id id() const noexcept { return id_; }

  /// Queues `m` (connection concept).
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

  /// Closes it with `code`; later sends are refused.
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
  /// Messages sent to it so far.
  [[nodiscard]] std::size_t received_count() const {
    lock_guard lock(lock_);
    return received_.size();
  }
  /// Forgets what was sent so far.
  void clear_received() {
    lock_guard lock(lock_);
    received_.clear();
  }
  /// Messages in its queue.
  [[nodiscard]] std::size_t queued() const {
    lock_guard lock(lock_);
    return queue_.size();
  }
  /// Bytes in its queue.
  [[nodiscard]] std::size_t queued_bytes() const {
    lock_guard lock(lock_);
    return queue_.bytes();
  }
  /// Messages its queue dropped.
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
  /// A test double's lock: one uncontended exchange, so benchmarks measure the manager.
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

/// A cluster's broker in memory, for tests: the nodes of one process share a store with
/// per-user seqs and history, and can be taken down.
class memory_bus {
  struct published {
    std::string user, thread;
    std::uint64_t seq;
    message m;
  };
  struct node_state {
    broker_receiver receiver;
    std::multiset<std::string, std::less<>> users;  ///< one entry per subscribe
    broker_stats stats;
  };
  struct user_history {
    history_epoch epoch = history_epoch::random();
    std::deque<published> events;
    std::uint64_t gone_through = 0;  ///< the last seq no longer held
  };
  struct state {
    std::mutex mutex;
    bool down = false;
    std::size_t history_limit = 1024;
    std::map<std::string, user_history, std::less<>> histories;
    std::map<std::string, std::uint64_t, std::less<>> seq;  ///< the cluster's per-user counter
    std::deque<published> pending;
    std::vector<node_state> nodes;
    std::uint64_t published_count = 0, refused = 0;
  };

 public:
  /// One node's connection to the bus: a uniws::broker.
  class endpoint {
   public:
    /// Stamps the next seq and delivers to every subscribed node (broker concept).
    bool publish(std::string_view user, const agent_event& e, std::uint64_t floor) {
      std::lock_guard lock(bus_->mutex);
      if (bus_->down) {
        ++bus_->refused;
        ++bus_->nodes[node_].stats.publish_failed;
        return false;
      }
      auto it = bus_->seq.find(user);
      if (it == bus_->seq.end()) it = bus_->seq.emplace(std::string(user), 0).first;
      it->second = std::max(it->second, floor) + 1;  // never below what the node has shown
      bus_->pending.push_back({std::string(user), e.thread_id, it->second, encode_event(e, it->second)});
      user_history& h = history_of(user);
      h.events.push_back(bus_->pending.back());
      while (h.events.size() > bus_->history_limit) {
        h.gone_through = h.events.front().seq;
        h.events.pop_front();
      }
      ++bus_->published_count;
      ++bus_->nodes[node_].stats.published;
      return true;
    }
    /// This node receives the user's events.
    void subscribe(std::string_view user) {
      std::lock_guard lock(bus_->mutex);
      bus_->nodes[node_].users.emplace(user);
    }
    /// This node stops receiving them.
    void unsubscribe(std::string_view user) {
      std::lock_guard lock(bus_->mutex);
      auto& users = bus_->nodes[node_].users;
      if (auto it = users.find(user); it != users.end()) users.erase(it);
    }
    /// Where this node's deliveries go.
    void set_receiver(broker_receiver r) {
      std::lock_guard lock(bus_->mutex);
      bus_->nodes[node_].receiver = std::move(r);
    }
    /// True: a cluster's broker.
    [[nodiscard]] bool enabled() const noexcept { return true; }
    /// This node's counters.
    [[nodiscard]] broker_stats stats() const {
      std::lock_guard lock(bus_->mutex);
      broker_stats s = bus_->nodes[node_].stats;
      s.connected = bus_->down ? 0 : 1;
      return s;
    }
    /// Stops this node: nothing more is delivered to it.
    void stop() { set_receiver(nullptr); }
    /// Answers with the thread's stored events after `after`.
    void read_history(std::string_view user, std::string_view thread, std::optional<std::uint64_t> after,
                      const history_receiver& receiver) {
      stored_history answer;
      {
        std::lock_guard lock(bus_->mutex);
        if (!bus_->down) {
          const user_history& h = history_of(user);
          answer.answered = true;
          answer.epoch = h.epoch;
          const auto it = bus_->seq.find(user);
          answer.last_seq = it == bus_->seq.end() ? 0 : it->second;
          if (after) {
            answer.complete = *after >= h.gone_through && *after <= answer.last_seq;
            for (const published& p : h.events)
              if (p.seq > *after && p.thread == thread) answer.events.emplace_back(p.seq, p.m);
          }
        }
      }
      receiver(std::move(answer));
    }
    /// Whether this node is subscribed to the user.
    [[nodiscard]] bool subscribed(std::string_view user) const {
      std::lock_guard lock(bus_->mutex);
      return bus_->nodes[node_].users.count(user) != 0;
    }

   private:
    friend class memory_bus;
    endpoint(std::shared_ptr<state> bus, std::size_t node) : bus_(std::move(bus)), node_(node) {}
    user_history& history_of(std::string_view user) {  ///< under the bus's mutex
      auto it = bus_->histories.find(user);
      if (it == bus_->histories.end()) it = bus_->histories.emplace(std::string(user), user_history{}).first;
      return it->second;
    }
    std::shared_ptr<state> bus_;
    std::size_t node_;
  };

  /// A new node's broker on this bus.
  [[nodiscard]] endpoint node() {
    std::lock_guard lock(state_->mutex);
    state_->nodes.emplace_back();
    return endpoint(state_, state_->nodes.size() - 1);
  }

  /// Takes the bus down (publish refuses, reads fail) or brings it back.
  void set_down(bool down) {
    std::lock_guard lock(state_->mutex);
    state_->down = down;
  }

  /// Forgets every user's history and counter, as a store restarted without persistence.
  void lose_history() {
    std::lock_guard lock(state_->mutex);
    state_->histories.clear();
    state_->seq.clear();
  }

  /// Keeps at most `events` events per user.
  void set_history_limit(std::size_t events) {
    std::lock_guard lock(state_->mutex);
    state_->history_limit = events;
  }

  /// Delivers everything published so far, in publication order, to every node subscribed
  /// to its user; returns how many node deliveries were made. Call it from no manager's emit.
  std::size_t pump() {
    std::size_t deliveries = 0;
    for (;;) {
      std::vector<broker_receiver> targets;  // copies: node() may grow the vector meanwhile
      published p;
      {
        std::lock_guard lock(state_->mutex);
        if (state_->pending.empty()) return deliveries;
        p = std::move(state_->pending.front());
        state_->pending.pop_front();
        for (auto& n : state_->nodes)
          if (n.receiver && n.users.count(p.user)) {
            targets.push_back(n.receiver);
            ++n.stats.received;
          }
      }
      for (broker_receiver& r : targets) r(p.user, p.thread, p.seq, p.m);
      deliveries += targets.size();
    }
  }

  /// Events the bus accepted.
  [[nodiscard]] std::uint64_t published_count() const {
    std::lock_guard lock(state_->mutex);
    return state_->published_count;
  }
  /// Events refused while down.
  [[nodiscard]] std::uint64_t refused() const {
    std::lock_guard lock(state_->mutex);
    return state_->refused;
  }

 private:
  std::shared_ptr<state> state_ = std::make_shared<state>();
};

static_assert(broker<memory_bus::endpoint>);

}  // namespace uniws::testing
