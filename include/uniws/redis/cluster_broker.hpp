// uniws/redis/cluster_broker.hpp - a uniws::broker on a Redis Cluster: sharded pub/sub
// (SPUBLISH/SSUBSCRIBE, Redis 7) and sharded history, driven by an Asio executor (no thread of
// its own, nothing that blocks).
//
//   uniws::redis::cluster_broker b(net::make_strand(io), {.seeds = {"10.0.0.1:7000", "10.0.0.2:7000"}});
//
// The contract is redis::broker's (one seq order per user for the whole cluster, history for
// resume, local delivery while the store cannot take an event), per user's shard:
// - A user's seq counter, history stream, epoch and channel carry the user's hash tag, so they
//   live on one shard; the same single-round-trip script as redis::broker runs there and
//   SPUBLISHes, so an event travels only through the shard that owns the user.
// - The slot map comes from CLUSTER SLOTS (any seed or known master). It is read again when a
//   shard's connection fails, when a command is answered MOVED, and when a shard unsubscribes us
//   (its slot moved). A command answered ASK is sent once more to the named node, after ASKING.
// - While a user's shard is unreachable (a failover in progress), publish() says no for that
//   user only: each node delivers that user's events itself, and users on other shards see
//   nothing of it.
// - A node that subscribes to a user again (its shard connection came back, a failover, a slot
//   moved) first reads what it missed from the user's stream: every event after the last seq it
//   delivered, in order, before any live one. If the stream no longer holds all of them (e.g.
//   writes the failed master had not replicated), the node counts `gaps_unrecovered`: the
//   user's next resume says recovered:false for the events that are gone.
// - With `login`, every connection (slot-map reads, each shard's two) sends AUTH first; with
//   `tls`, each runs over TLS and checks the node's certificate against the address CLUSTER
//   SLOTS announced (the constructor throws if the files cannot be used).
// Needs Boost.Asio and hiredis (its RESP formatter and reader only).
#pragma once

#include <uniws/broker.hpp>
#include <uniws/events.hpp>
#include <uniws/message.hpp>
#include <uniws/redis/credentials.hpp>
#include <uniws/redis/tls_options.hpp>
#include <uniws/redis/detail/posted_broker.hpp>
#include <uniws/redis/detail/resp_link.hpp>
#include <uniws/redis/detail/scripts.hpp>
#include <uniws/redis/detail/slot.hpp>
#include <uniws/stats.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <tuple>
#include <utility>
#include <vector>

namespace uniws::redis {

/// Where the Redis Cluster's seeds are, and how the broker keeps and retries.
struct cluster_options {
  std::vector<std::string> seeds;  ///< "host:port" of any cluster nodes; empty: disabled
  /// Keys `PREFIX:seq:{USER}`, `PREFIX:h:{USER}`, `PREFIX:epoch:{USER}`; shard channel
  /// `PREFIX:u:{USER}` (detail::user_tag). The prefix must not contain braces.
  std::string prefix = "uniws";
  std::chrono::milliseconds backoff_min{50};    ///< the first wait between slot-map reads that fail
  std::chrono::milliseconds backoff_max{2000};  ///< the longest wait between them
  /// Events kept per user for resumes.
  std::size_t history_events = 1024;
  std::chrono::seconds history_age{300};  ///< kept events expire after this
  credentials login;                      ///< AUTH on every connection to every node, if a password is given
  tls_options tls;                        ///< TLS on every connection to every node, if a CA file is given
  /// Connecting to a node (and AUTH) longer than this fails that attempt (a black-holed node).
  std::chrono::milliseconds connect_timeout{2000};
};

/// What this node counts per master of the cluster.
struct shard_stats {
  // The fields: each is documented by its entry in fields() (kind and help, as /stats and
  // /metrics show them), so the API reference leaves them to that list.
  /// @cond stats_fields
  std::uint64_t up = 0, slots = 0, published = 0, publish_failed = 0, resubscribes = 0;
  /// @endcond

  /// The list the fields are declared once in: /stats, /metrics and += walk it.
  static constexpr auto fields() noexcept {
    using s = shard_stats;
    using f = stat_field<s>;
    using enum stat_kind;
    return std::array{
        f{"up", gauge, "1 while this node's two connections to the shard's master are up", &s::up},
        f{"slots", gauge, "slots the master serves in this node's slot map", &s::slots},
        f{"published", counter, "events the shard accepted", &s::published},
        f{"publish_failed", counter, "events for the shard's users not published (delivered locally)",
          &s::publish_failed},
        f{"resubscribes", counter, "users' channels subscribed again on this shard", &s::resubscribes},
    };
  }
  /// Field by field (summing over users, nodes or shards).
  constexpr shard_stats& operator+=(const shard_stats& o) noexcept { return add_stats(*this, o); }
};

/// A cluster's broker on a Redis Cluster: each user's keys and shard channel on the
/// user's slot; MOVED/ASK followed; a lost subscription reads back what it missed.
class cluster_broker : public detail::posted_broker<cluster_broker> {
 public:
  /// `ex` should be a strand (or a one-thread io_context): all Redis I/O runs there.
  cluster_broker(boost::asio::any_io_executor ex, cluster_options options)
      : impl_(std::make_shared<impl>(std::move(ex), std::move(options))) {
    if (impl_->options.seeds.empty()) return;
    boost::asio::post(impl_->ex, [i = impl_] { i->refresh(); });
  }
  /// Moves the running broker.
  cluster_broker(cluster_broker&&) noexcept = default;
  /// Moves the running broker.
  cluster_broker& operator=(cluster_broker&&) noexcept = default;
  ~cluster_broker() {
    if (impl_) boost::asio::post(impl_->ex, [i = impl_] { i->shut_down(); });
  }

  /// True: a cluster's broker.
  [[nodiscard]] bool enabled() const noexcept { return !impl_->options.seeds.empty(); }

  /// Publishes on the user's shard (broker concept); false while it is unreachable.
  bool publish(std::string_view user, const agent_event& e, std::uint64_t floor) {
    const std::uint16_t slot = detail::key_slot(detail::user_tag(user));
    if (!impl_->slot_up[slot].load(std::memory_order_acquire)) {
      impl_->stats.add<&broker_stats::publish_failed>();
      boost::asio::post(impl_->ex, [i = impl_, slot] {
        if (auto* s = i->owner[slot]) s->counters.add<&shard_stats::publish_failed>();
      });
      return false;
    }
    boost::asio::post(impl_->ex, [i = impl_, p = impl::publication{std::string(user), e.thread_id,
                                                                   encode_event(e, 0), floor}]() mutable {
      i->send_publish(std::make_shared<impl::publication>(std::move(p)), nullptr, 0);
    });
    return true;
  }

  /// Each master of the last slot map read (host:port), in address order.
  [[nodiscard]] std::vector<std::pair<std::string, shard_stats>> shards() const {
    std::lock_guard lock(impl_->shards_mutex);
    std::vector<std::pair<std::string, shard_stats>> out;
    for (const auto& [address, s] : impl_->shards) {
      shard_stats now = s->counters.snapshot();
      now.up = s->seen_up.load(std::memory_order_relaxed) ? 1 : 0;
      now.slots = s->served_slots.load(std::memory_order_relaxed);
      out.emplace_back(address, now);
    }
    return out;
  }

 private:
  friend class detail::posted_broker<cluster_broker>;

  struct impl : std::enable_shared_from_this<impl> {
    impl(boost::asio::any_io_executor e, cluster_options o)
        : ex(std::move(e)),
          options(std::move(o)),
          tls(options.tls.ca_file.empty() ? nullptr : detail::make_tls_context(options.tls)),
          retry(ex),
          slot_up(new std::atomic<bool>[detail::slot_count]),
          owner(detail::slot_count) {
      for (std::size_t i = 0; i < detail::slot_count; ++i) slot_up[i].store(false);
    }

    struct shard {
      std::string host;
      int port = 0;
      std::shared_ptr<detail::resp_link> commands, subscriber;
      bool commands_up = false, subscriber_up = false, commands_ever_up = false, subscriber_ever_up = false;
      std::deque<std::string> pending;  ///< channels whose SSUBSCRIBE awaits its answer, in order
      atomic_stats<shard_stats> counters;
      std::atomic<bool> seen_up{false};            ///< up(), as the executor last saw it, for shards()
      std::atomic<std::uint64_t> served_slots{0};  ///< slots it serves in the slot map, for shards()
      [[nodiscard]] bool up() const noexcept { return commands_up && subscriber_up; }
    };

    using history_read = detail::history_read;

    /// What this node knows of one user it is subscribed to.
    struct feed {
      int count = 0;  ///< subscribe() calls not yet undone
      std::string channel;
      shard* at = nullptr;       ///< where the SSUBSCRIBE went, if it did
      bool confirmed = false;    ///< live and caught up: reads may go
      bool catching_up = false;  ///< the missed-events read is in flight: live events wait
      bool read_again = false;   ///< subscribed anew while it was: read once more after it
      bool live = false;         ///< Redis confirmed the SSUBSCRIBE made last
      /// After a read: live events up to this seq were in it too, if they come after it (the
      /// two connections are not ordered with each other). The first later one ends it.
      std::uint64_t read_through = 0;
      bool known = false;           ///< last_seen is meaningful
      bool again = false;           ///< subscribed before: this subscription counts as a resubscribe
      std::uint64_t last_seen = 0;  ///< the highest seq delivered to this node's receiver
      std::vector<std::tuple<std::string, std::uint64_t, message>> held;  ///< live, until caught up
      std::vector<history_read> reads;  ///< join reads waiting for `confirmed`
    };

    struct publication {
      std::string user, thread;
      message encoded;
      std::uint64_t floor = 0;
    };

    boost::asio::any_io_executor ex;
    cluster_options options;
    std::shared_ptr<boost::asio::ssl::context> tls;  ///< null: plain TCP
    broker_receiver receiver;
    boost::asio::steady_timer retry;
    std::chrono::milliseconds backoff{0};
    bool stopping = false, refreshing = false, refresh_again = false, retry_waiting = false;
    std::unique_ptr<std::atomic<bool>[]> slot_up;          ///< read by publish() on any thread
    std::vector<shard*> owner;                             ///< slot -> master, from the last map
    mutable std::mutex shards_mutex;                       ///< the map's shape, for shards() on other threads
    std::map<std::string, std::shared_ptr<shard>> shards;  ///< by host:port
    std::map<std::string, feed, std::less<>> users;
    std::map<std::string, std::string, std::less<>> channel_users;
    std::atomic<bool> connected{false};
    std::atomic<bool> refused{false};  ///< the last connection's credentials were refused
    atomic_stats<broker_stats> stats;

    std::string key(std::string_view kind, std::string_view user) const {
      return options.prefix + ":" + std::string(kind) + ":" + detail::user_tag(user);
    }
    static std::uint16_t slot_of(std::string_view user) { return detail::key_slot(detail::user_tag(user)); }
    shard* shard_of(std::string_view user) const { return owner[slot_of(user)]; }

    static std::optional<std::pair<std::string, int>> split_address(std::string_view a) {
      const auto colon = a.rfind(':');
      int port = 0;
      if (colon == std::string_view::npos ||
          std::from_chars(a.data() + colon + 1, a.data() + a.size(), port).ec != std::errc() || port <= 0 ||
          port > 65535)
        return std::nullopt;
      return std::pair{std::string(a.substr(0, colon)), port};
    }

    // --- the slot map ---------------------------------------------------------------------

    void refresh() {
      if (stopping) return;
      if (refreshing) {
        refresh_again = true;
        return;
      }
      refreshing = true;
      std::vector<std::string> candidates;
      for (const auto& [address, s] : shards)
        if (s->up()) candidates.push_back(address);
      for (const auto& [address, s] : shards)
        if (!s->up()) candidates.push_back(address);
      for (const auto& seed : options.seeds)
        if (std::find(candidates.begin(), candidates.end(), seed) == candidates.end())
          candidates.push_back(seed);
      ask_slots(std::make_shared<std::vector<std::string>>(std::move(candidates)), 0);
    }

    void ask_slots(std::shared_ptr<std::vector<std::string>> candidates, std::size_t i) {
      if (stopping) return;
      if (i == candidates->size()) {
        refreshing = false;
        return retry_later();
      }
      const auto address = split_address((*candidates)[i]);
      if (!address) return ask_slots(std::move(candidates), i + 1);
      auto link = std::make_shared<detail::resp_link>(ex, link_options());
      auto moved_on = std::make_shared<bool>(false);
      auto next = [self = shared_from_this(), candidates, i, moved_on](detail::link_end why) {
        self->count_end(why);
        if (std::exchange(*moved_on, true)) return;
        self->ask_slots(candidates, i + 1);
      };
      link->start(
          address->first, address->second,
          [self = shared_from_this(), link, next, moved_on] {
            link->send({"CLUSTER", "SLOTS"}, [self, link, next, moved_on](const redisReply* r) {
              if (*moved_on) return;
              link->close();  // whichever way: a slot-map read is the link's only command
              if (!self->apply_map(r)) return next(detail::link_end::lost);
              *moved_on = true;
              self->refreshing = false;
              self->backoff = std::chrono::milliseconds(0);
              if (std::exchange(self->refresh_again, false)) self->refresh();
            });
          },
          next);
    }

    void retry_later() {
      if (stopping || retry_waiting) return;
      retry_waiting = true;
      backoff = std::clamp(backoff * 2, options.backoff_min, options.backoff_max);
      retry.expires_after(backoff);
      retry.async_wait([self = shared_from_this()](boost::system::error_code ec) {
        self->retry_waiting = false;
        if (!ec) self->refresh();
      });
    }

    /// CLUSTER SLOTS: [[start, end, [host, port, id...], replicas...]...]. False if unusable.
    bool apply_map(const redisReply* r) {
      if (stopping || !r || r->type != REDIS_REPLY_ARRAY || r->elements == 0) return false;
      std::vector<std::string> next(detail::slot_count);
      for (std::size_t i = 0; i < r->elements; ++i) {
        const redisReply* range = r->element[i];
        if (range->type != REDIS_REPLY_ARRAY || range->elements < 3 ||
            range->element[0]->type != REDIS_REPLY_INTEGER ||
            range->element[1]->type != REDIS_REPLY_INTEGER || range->element[2]->type != REDIS_REPLY_ARRAY ||
            range->element[2]->elements < 2 || range->element[2]->element[0]->type != REDIS_REPLY_STRING ||
            range->element[2]->element[1]->type != REDIS_REPLY_INTEGER)
          return false;
        const auto first = range->element[0]->integer, last = range->element[1]->integer;
        if (first < 0 || last >= detail::slot_count || first > last) return false;
        const redisReply* master = range->element[2];
        const std::string address = std::string(master->element[0]->str, master->element[0]->len) + ":" +
                                    std::to_string(master->element[1]->integer);
        for (auto s = first; s <= last; ++s) next[static_cast<std::size_t>(s)] = address;
      }
      stats.add<&broker_stats::slot_map_refreshes>();
      {
        std::lock_guard lock(shards_mutex);
        std::map<std::string, std::shared_ptr<shard>> kept;
        for (const auto& address : next) {
          if (address.empty() || kept.contains(address)) continue;
          if (auto it = shards.find(address); it != shards.end()) {
            kept.emplace(address, it->second);
          } else if (const auto hp = split_address(address)) {
            auto s = std::make_shared<shard>();
            s->host = hp->first;
            s->port = hp->second;
            kept.emplace(address, std::move(s));
          }
        }
        for (auto& [address, s] : shards)
          if (!kept.contains(address)) disconnect(*s);
        shards = std::move(kept);
        std::map<shard*, std::uint64_t> served;
        for (std::size_t slot = 0; slot < detail::slot_count; ++slot) {
          shard* s = next[slot].empty() ? nullptr : shards.at(next[slot]).get();
          owner[slot] = s;
          if (s) ++served[s];
        }
        for (auto& [address, s] : shards) s->served_slots.store(served[s.get()], std::memory_order_relaxed);
      }
      for (auto& [address, s] : shards) connect(s);
      update_slots();
      // Users whose shard changed (or whose subscription was lost) subscribe where they live now.
      for (auto& [user, f] : users)
        if (f.at != shard_of(user)) resubscribe(user, f);
      return true;
    }

    void update_slots() {
      bool all = !shards.empty();
      for (std::size_t slot = 0; slot < detail::slot_count; ++slot)
        slot_up[slot].store(owner[slot] && owner[slot]->commands_up, std::memory_order_release);
      for (auto& [address, s] : shards) {
        s->seen_up.store(s->up(), std::memory_order_relaxed);
        all = all && s->up();
      }
      connected.store(all, std::memory_order_release);
    }

    // --- a shard's two connections --------------------------------------------------------

    /// Opens whichever of the shard's two connections is missing.
    void connect(const std::shared_ptr<shard>& s) {
      if (!s->commands) open(s, false);
      if (!s->subscriber) open(s, true);
    }

    void open(const std::shared_ptr<shard>& s, bool subscriber) {
      std::weak_ptr<shard> weak = s;
      auto self = shared_from_this();
      auto link = subscriber ? std::make_shared<detail::resp_link>(ex, link_options(),
                                                                   [self, weak](const redisReply* r) {
                                                                     if (auto locked = weak.lock())
                                                                       self->on_push(*locked, r);
                                                                   })
                             : std::make_shared<detail::resp_link>(ex, link_options());
      (subscriber ? s->subscriber : s->commands) = link;
      auto current = [weak, raw = link.get(), subscriber]() -> std::shared_ptr<shard> {
        auto sh = weak.lock();
        return sh && (subscriber ? sh->subscriber : sh->commands).get() == raw ? sh : nullptr;
      };
      link->start(
          s->host, s->port,
          [self, current, subscriber] {
            if (auto sh = current()) self->link_up(*sh, subscriber);
          },
          [self, current, subscriber](detail::link_end why) {
            self->count_end(why);
            if (auto sh = current()) self->link_down(*sh, subscriber);
          });
    }

    detail::link_options link_options() const {
      return {.login = options.login, .connect_timeout = options.connect_timeout, .tls = tls};
    }

    /// A refused login or certificate is counted, and shown until a connection is up.
    void count_end(detail::link_end why) {
      if (why == detail::link_end::credentials_refused) stats.add<&broker_stats::auth_failures>();
      if (why == detail::link_end::tls_refused) stats.add<&broker_stats::tls_failures>();
      if (why == detail::link_end::credentials_refused || why == detail::link_end::tls_refused)
        refused.store(true, std::memory_order_relaxed);
    }

    void link_up(shard& s, bool subscriber) {
      refused.store(false, std::memory_order_relaxed);
      (subscriber ? s.subscriber_up : s.commands_up) = true;
      if (std::exchange(subscriber ? s.subscriber_ever_up : s.commands_ever_up, true))
        stats.add<&broker_stats::reconnects>();
      backoff = std::chrono::milliseconds(0);
      update_slots();
      if (!s.up()) return;
      for (auto& [user, f] : users)
        if (shard_of(user) == &s && f.at != &s) resubscribe(user, f);
    }

    /// One connection failed: the other goes on (a killed subscriber connection does not stop
    /// publishing); read the map again, which reopens it (a failover moves the slots).
    void link_down(shard& s, bool subscriber) {
      close_link(s, subscriber);
      update_slots();
      if (stopping) return;
      refresh_again = refreshing;  // a map read under way may predate the failure
      retry_later();
    }

    void close_link(shard& s, bool subscriber) {
      auto link = std::move(subscriber ? s.subscriber : s.commands);
      (subscriber ? s.subscriber_up : s.commands_up) = false;
      if (subscriber) {
        s.pending.clear();
        for (auto& [user, f] : users)
          if (f.at == &s) lose(f);
      }
      if (link) link->close();
    }

    void disconnect(shard& s) {
      close_link(s, false);
      close_link(s, true);
    }

    /// The user's subscription is gone: live events stop until it is made again.
    void lose(feed& f) {
      f.at = nullptr;
      f.confirmed = f.live = false;
      if (f.catching_up) return;  // its read fails too, and delivers what it held
      auto reads = std::move(f.reads);
      f.reads.clear();
      for (auto& q : reads) q.receiver(stored_history{});
    }

    // --- subscriptions --------------------------------------------------------------------

    void add_subscription(const std::string& user) {
      feed& f = users[user];
      if (++f.count > 1) return;
      f.channel = key("u", user);
      channel_users[f.channel] = user;
      resubscribe(user, f);
    }

    void drop_subscription(const std::string& user) {
      auto it = users.find(user);
      if (it == users.end() || --it->second.count > 0) return;
      feed f = std::move(it->second);
      users.erase(it);
      channel_users.erase(f.channel);
      if (f.at && f.at->subscriber_up) f.at->subscriber->send({"SUNSUBSCRIBE", f.channel}, nullptr);
      for (auto& q : f.reads) q.receiver(stored_history{});
    }

    void resubscribe(const std::string& user, feed& f) {
      f.at = nullptr;
      f.confirmed = f.live = false;
      shard* s = shard_of(user);
      if (!s || !s->up()) return;
      if (std::exchange(f.again, true)) {
        stats.add<&broker_stats::resubscribes>();
        s->counters.add<&shard_stats::resubscribes>();
      }
      f.at = s;
      s->pending.push_back(f.channel);
      s->subscriber->send({"SSUBSCRIBE", f.channel}, nullptr);
    }

    feed* feed_of_channel(std::string_view channel) {
      auto u = channel_users.find(channel);
      if (u == channel_users.end()) return nullptr;
      auto f = users.find(u->second);
      return f == users.end() ? nullptr : &f->second;
    }

    /// What a subscriber connection gets: confirmations, messages, and the errors its
    /// SSUBSCRIBEs were answered with (MOVED: the slot is elsewhere now).
    void on_push(shard& s, const redisReply* r) {
      if (stopping) return;
      if (r->type == REDIS_REPLY_ERROR) {
        if (!s.pending.empty()) {
          if (feed* f = feed_of_channel(s.pending.front()); f && f->at == &s) f->at = nullptr;
          s.pending.pop_front();
        }
        return refresh();
      }
      if (r->type != REDIS_REPLY_ARRAY || r->elements != 3 || r->element[0]->type != REDIS_REPLY_STRING ||
          r->element[1]->type != REDIS_REPLY_STRING)
        return;
      const std::string_view kind(r->element[0]->str, r->element[0]->len);
      const std::string_view channel(r->element[1]->str, r->element[1]->len);
      feed* f = feed_of_channel(channel);
      if (kind == "ssubscribe") {
        if (!s.pending.empty()) s.pending.pop_front();
        if (f && f->at == &s && !f->confirmed) {
          f->live = true;
          // A read for an earlier subscription may still be out: it predates this one, so
          // another read follows it.
          if (f->catching_up)
            f->read_again = true;
          else
            catch_up(std::string(channel_users.find(channel)->second), *f, s);
        }
      } else if (kind == "sunsubscribe") {
        // Not asked for (the feed still exists): the slot left this master.
        if (f && f->at == &s) {
          lose(*f);
          refresh();
        }
      } else if (kind == "smessage" && f && (f->at == &s || f->at == nullptr) &&
                 r->element[2]->type == REDIS_REPLY_STRING) {
        // From the shard the user's subscription is on (or before it is made again). A late
        // message from the master the slot left is dropped: it ran there before the keys
        // moved, so the read on the new master returns it, in order.
        on_message(channel_users.find(channel)->second, *f,
                   std::string_view(r->element[2]->str, r->element[2]->len));
      }
    }

    void on_message(const std::string& user, feed& f, std::string_view payload) {
      const auto parsed = detail::parse_channel_message(payload);
      if (!parsed) return;
      const std::uint64_t seq = parsed->seq;
      // Stamped on arrival: delivery latency is measured on this node's clock, from here.
      message m = message::copy_of(parsed->envelope, message::clock::now());
      if (!f.confirmed) {  // not caught up (reading, or waiting to read): after the read
        // Waiting to read, the next read returns these too: a bound costs nothing then.
        if (!f.catching_up && f.known && f.held.size() >= options.history_events) f.held.clear();
        f.held.emplace_back(std::string(parsed->thread), seq, std::move(m));
        return;
      }
      if (f.read_through != 0) {
        if (seq <= f.read_through) return;  // delivered from the read already
        f.read_through = 0;
      }
      deliver(user, f, parsed->thread, seq, m);
    }

    void deliver(const std::string& user, feed& f, std::string_view thread, std::uint64_t seq,
                 const message& m) {
      f.last_seen = std::max(f.last_seen, seq);
      stats.add<&broker_stats::received>();
      if (receiver) receiver(user, thread, seq, m);
    }

    /// Confirmed: read what this node missed (nothing, the first time) before going live.
    void catch_up(std::string user, feed& f, shard& s) {
      if (!s.commands_up) return lose(f);  // resubscribed when its commands connection is back
      f.catching_up = true;
      const std::string seq_key = key("seq", user), stream = key("h", user),
                        limit = std::to_string(options.history_events);
      const std::string after = f.known ? std::to_string(f.last_seen) : std::string();
      s.commands->send({"EVAL", detail::missed_script, "2", seq_key, stream, after, limit},
                       [self = shared_from_this(), user = std::move(user)](const redisReply* r) {
                         self->caught_up(user, detail::parse_missed(r));
                       });
    }

    void caught_up(const std::string& user, detail::missed_events missed) {
      auto it = users.find(user);
      if (it == users.end()) return;
      feed& f = it->second;
      f.catching_up = false;
      auto held = std::move(f.held);
      f.held.clear();
      const bool first = !f.known;
      if (!missed.answered) {
        // The read failed (its connection, or MOVED: the slot is moving). What is held stays
        // held: delivered after the next read, which the next subscription makes.
        f.held = std::move(held);
        f.read_again = false;
        lose(f);
        return refresh();
      }
      if (!first && !missed.complete) stats.add<&broker_stats::gaps_unrecovered>();
      for (auto& e : missed.events)
        if (e.seq > f.last_seen) {
          stats.add<&broker_stats::events_recovered>();
          deliver(user, f, e.thread, e.seq, e.envelope);
        }
      if (f.at && std::exchange(f.read_again, false)) {
        // Subscribed anew during the read: events between the read and that subscription are
        // in neither. Read once more; what is held waits for it (it may lie past that gap).
        f.held = std::move(held);
        f.known = true;
        f.last_seen = std::max(f.last_seen, missed.last_seq);
        return catch_up(user, f, *f.at);
      }
      // Live events that came meanwhile: those the read did not already return. The first
      // time there was no read of events, so all of them.
      const std::uint64_t read_up_to = f.last_seen;
      for (auto& [thread, seq, m] : held)
        if (first || seq > read_up_to) deliver(user, f, thread, seq, m);
      f.known = true;
      f.last_seen = std::max(f.last_seen, missed.last_seq);
      f.read_through = first ? 0 : f.last_seen;
      if (f.at == nullptr) return lose(f);  // lost while reading
      if (!f.live) return;                  // subscribed anew since; that confirmation starts the next read
      f.confirmed = true;
      auto reads = std::move(f.reads);
      f.reads.clear();
      for (auto& q : reads) read(std::move(q));
    }

    // --- publishing and reading -----------------------------------------------------------

    void send_publish(std::shared_ptr<publication> p, shard* target, int redirects) {
      shard* s = target ? target : shard_of(p->user);
      const std::string_view text(p->encoded.data(), p->encoded.size());
      constexpr std::string_view seq_field = ",\"seq\":0";
      const auto at = text.find(seq_field);
      if (!s || !s->commands_up || at == std::string_view::npos || stopping) return publish_failed(*p, s);
      const std::string seq_key = key("seq", p->user), chan = key("u", p->user), stream = key("h", p->user),
                        epoch_key = key("epoch", p->user), floor_text = std::to_string(p->floor),
                        route = std::to_string(p->thread.size()) + " " + p->thread,
                        new_epoch = history_epoch::random().to_string(),
                        limit = std::to_string(options.history_events),
                        age = std::to_string(options.history_age.count());
      const std::string_view prefix = text.substr(0, at + seq_field.size() - 1),
                             suffix = text.substr(at + seq_field.size());
      if (target) s->commands->send({"ASKING"}, nullptr);
      s->commands->send({"EVAL", detail::publish_script, "4", seq_key, chan, stream, epoch_key, floor_text,
                         route, prefix, suffix, new_epoch, limit, p->thread, age, "SPUBLISH"},
                        [self = shared_from_this(), p, s, redirects](const redisReply* r) {
                          self->published(p, s, redirects, r);
                        });
    }

    void published(const std::shared_ptr<publication>& p, shard* s, int redirects, const redisReply* r) {
      if (r && r->type == REDIS_REPLY_INTEGER) {
        stats.add<&broker_stats::published>();
        if (is_shard(s)) s->counters.add<&shard_stats::published>();
        return;
      }
      if (r && r->type == REDIS_REPLY_ERROR && redirects < 3) {
        const std::string_view error(r->str, r->len);
        const bool moved = error.starts_with("MOVED "), ask = error.starts_with("ASK ");
        if (moved || ask) {
          // "MOVED <slot> <host:port>"
          const auto space = error.rfind(' ');
          auto to = shards.find(std::string(error.substr(space + 1)));
          if (moved) refresh();
          if (to != shards.end() && to->second->commands_up)
            return send_publish(p, ask ? to->second.get() : (owner[slot_of(p->user)] = to->second.get()),
                                redirects + 1);
        } else {
          refresh();  // CLUSTERDOWN, TRYAGAIN: the map is changing
        }
      }
      publish_failed(*p, is_shard(s) ? s : nullptr);
    }

    bool is_shard(const shard* s) const {
      for (const auto& [address, known] : shards)
        if (known.get() == s) return true;
      return false;
    }

    /// Not published: this node still delivers it (seq 0: the manager stamps it locally).
    void publish_failed(const publication& p, shard* s) {
      stats.add<&broker_stats::publish_failed>();
      if (s) s->counters.add<&shard_stats::publish_failed>();
      if (!stopping && receiver) receiver(p.user, p.thread, 0, p.encoded);
    }

    void read(history_read q) {
      auto it = users.find(q.user);
      shard* s = shard_of(q.user);
      if (stopping || it == users.end() || !s || !s->up()) return q.receiver(stored_history{});
      if (!it->second.confirmed) return it->second.reads.push_back(std::move(q));
      const std::string seq_key = key("seq", q.user), stream = key("h", q.user),
                        epoch_key = key("epoch", q.user);
      const std::string after = q.after ? std::to_string(*q.after) : std::string(),
                        new_epoch = history_epoch::random().to_string(),
                        age = std::to_string(options.history_age.count()),
                        limit = std::to_string(options.history_events);
      s->commands->send(
          {"EVAL", detail::read_script, "3", seq_key, stream, epoch_key, after, new_epoch, q.thread, age,
           limit},
          [receiver = std::move(q.receiver)](const redisReply* r) { receiver(detail::parse_history(r)); });
    }

    void shut_down() {
      stopping = true;
      connected.store(false, std::memory_order_release);
      retry.cancel();
      std::lock_guard lock(shards_mutex);
      for (auto& [address, s] : shards) disconnect(*s);
      for (auto& [user, f] : users) {
        for (auto& q : f.reads) q.receiver(stored_history{});
        f.reads.clear();
      }
    }
  };

  std::shared_ptr<impl> impl_;
};

static_assert(uniws::broker<cluster_broker>);

}  // namespace uniws::redis
