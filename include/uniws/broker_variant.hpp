// uniws/broker_variant.hpp - one of several brokers, chosen at run time (e.g. by a flag:
// one Redis, or a Redis Cluster), behind the one broker type a manager_factory names.
//
//   using any_redis = uniws::broker_variant<uniws::redis::broker, uniws::redis::cluster_broker>;
//   any_redis b = cluster ? any_redis(uniws::redis::cluster_broker(ex, c)) :
//   any_redis(uniws::redis::broker(ex, o));
#pragma once

#include <uniws/broker.hpp>

#include <cstdint>
#include <optional>
#include <string_view>
#include <utility>
#include <variant>

namespace uniws {

/// One of several brokers, picked at run time (a server's flags choose Redis, Redis Cluster or none);
/// itself a broker.
template <broker... Brokers>
class broker_variant {
 public:
  /// Holds `b`, one of Brokers.
  template <class B>
    requires(std::same_as<B, Brokers> || ...)
  broker_variant(B b)
      : brokers_(std::move(b)) {}  // NOLINT(google-explicit-constructor): a broker is one of these

  /// The held broker's publish (see the broker concept).
  bool publish(std::string_view user, const agent_event& e, std::uint64_t floor) {
    return std::visit([&](auto& b) { return b.publish(user, e, floor); }, brokers_);
  }
  /// The held broker's subscribe.
  void subscribe(std::string_view user) {
    std::visit([&](auto& b) { b.subscribe(user); }, brokers_);
  }
  /// The held broker's unsubscribe.
  void unsubscribe(std::string_view user) {
    std::visit([&](auto& b) { b.unsubscribe(user); }, brokers_);
  }
  /// The held broker's set_receiver.
  void set_receiver(broker_receiver r) {
    std::visit([&](auto& b) { b.set_receiver(std::move(r)); }, brokers_);
  }
  /// Whether the held broker is a cluster's.
  [[nodiscard]] bool enabled() const {
    return std::visit([](const auto& b) -> bool { return b.enabled(); }, brokers_);
  }
  /// The held broker's counters.
  [[nodiscard]] broker_stats stats() const {
    return std::visit([](const auto& b) { return b.stats(); }, brokers_);
  }
  /// Stops the held broker.
  void stop() {
    std::visit([](auto& b) { b.stop(); }, brokers_);
  }
  /// The held broker's read_history.
  void read_history(std::string_view user, std::string_view thread, std::optional<std::uint64_t> after,
                    history_receiver r) {
    std::visit([&](auto& b) { b.read_history(user, thread, after, std::move(r)); }, brokers_);
  }

  /// The broker, if it is a `B`; for what only that kind has (e.g. a cluster's shards).
  template <class B>
  [[nodiscard]] const B* get_if() const noexcept {
    return std::get_if<B>(&brokers_);
  }

 private:
  std::variant<Brokers...> brokers_;
};

}  // namespace uniws
