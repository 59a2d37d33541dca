// uniws/detail/cluster_mode.hpp - what a manager in a cluster adds to one on its own: the link
// to its factory's broker, the user it speaks for, and the joins held back until the broker's
// store answers them. unified_manager holds one of two modes, standalone_mode (nothing) or
// cluster_mode, chosen when the factory makes it; every member here runs under the manager's
// emit mutex, except presence() (under its writers' mutex).
#pragma once

#include <uniws/broker.hpp>
#include <uniws/connection.hpp>
#include <uniws/history.hpp>
#include <uniws/message.hpp>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace uniws::detail {

/// A manager on its own: every event is stamped and delivered where it is emitted.
struct standalone_mode {};

/// A join the cluster's store has not answered yet, and the thread's events that arrived
/// meanwhile (sent after the answer, those the answer already covers skipped).
struct pending_join {
  connection_id id;
  std::string thread;
  std::optional<resume_point> resume;
  std::uint64_t asked_at;  ///< the node's seq when the store was asked
  std::vector<std::pair<std::uint64_t, message>> held;
  bool overflowed = false;  ///< held more than the history bound: answered not recovered
};

/// A manager in a cluster: its events go through the broker, and its joins wait for the store.
class cluster_mode {
 public:
  cluster_mode(cluster_link& link, std::string user) noexcept : link_(link), user_(std::move(user)) {}

  /// Hands the event to the broker; false if it cannot now (the manager delivers it itself).
  bool publish(const agent_event& e, std::uint64_t floor) { return link_.publish(user_, e, floor); }
  /// The node holds a connection of the user / no longer holds any.
  void presence(bool has_connections) { link_.presence(user_, has_connections); }

  /// How many joins of connection `id` await the store, or nothing if one of them is for
  /// `thread` already (a second one is refused).
  [[nodiscard]] std::optional<std::size_t> joins_in_flight(connection_id id, std::string_view thread) const {
    std::size_t n = 0;
    for (const pending_join& p : pending_)
      if (p.id == id) {
        if (p.thread == thread) return std::nullopt;
        ++n;
      }
    return n;
  }

  /// Holds the join back and asks the store; the answer comes back as the manager's
  /// complete_join, maybe before this returns (a store that answers at once, or that throws).
  /// The caller unlocks the emit mutex first: `unlock` is called between the two.
  template <class Unlock>
  void ask_store(pending_join join, Unlock unlock) {
    const connection_id id = join.id;
    const std::string thread = join.thread;
    const std::optional<std::uint64_t> after =
        join.resume ? std::optional(join.resume->after_seq) : std::nullopt;
    pending_.push_back(std::move(join));
    unlock();
    link_.read_history(user_, id, thread, after);
  }

  /// The held-back join (id, thread), no longer pending; nothing if it is not (answered already).
  [[nodiscard]] std::optional<pending_join> answered(connection_id id, std::string_view thread) {
    const auto it = std::find_if(pending_.begin(), pending_.end(),
                                 [&](const pending_join& p) { return p.id == id && p.thread == thread; });
    if (it == pending_.end()) return std::nullopt;
    std::optional<pending_join> p(std::move(*it));
    pending_.erase(it);
    return p;
  }

  /// Keeps an event of `thread` for each join of it that awaits the store, at most `limit`
  /// (the history's bound) per join: past it the oldest goes and the join is not recovered.
  void hold_back(std::string_view thread, std::uint64_t seq, const message& m, std::size_t limit) {
    for (pending_join& p : pending_) {
      if (p.thread != thread) continue;
      if (p.held.size() >= std::max<std::size_t>(limit, 1)) {
        p.overflowed = true;  // the store is slow to answer; never hold more than a history's worth
        p.held.erase(p.held.begin());
      }
      p.held.emplace_back(seq, m);
    }
  }

 private:
  cluster_link& link_;
  std::string user_;
  std::vector<pending_join> pending_;
};

}  // namespace uniws::detail
