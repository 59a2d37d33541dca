// uniws/redis/broker.hpp - a uniws::broker on Redis pub/sub, driven by an Asio
// executor: no thread of its own, nothing that blocks the event loop.
//
//   uniws::redis::broker b(net::make_strand(io), {.host = "127.0.0.1", .port = 6379});
//   uniws::manager_factory<connection, uniws::always_available, uniws::redis::broker> f({}, {}, b);
//
// Each event goes through one EVAL that increments the user's counter (never below the
// node's floor) and PUBLISHes the envelope with that seq on the user's channel, so the
// channel carries the events in seq order. A node subscribes to a user's channel while it
// holds one of the user's connections and delivers what arrives there, its own events
// included. The same EVAL appends the event to the user's history, a Redis Stream keyed by seq
// (XADD MAXLEN ~ history_events), beside the history's epoch; a stream that is new (first
// event, expired after history_age without events, or lost with a restart without
// persistence) gets a new epoch. A join reads the epoch, the last seq and, to resume, the
// thread's events after a seq (one EVAL with XRANGE), once the node's subscription to the
// user is confirmed, so every later event reaches the node live. While Redis is unreachable, publish() says
// no (the node delivers locally); events in flight when the connection drops come back to this node's
// receiver with seq 0 (re-stamped locally, so not lost); the broker reconnects with exponential backoff and
// resubscribes. With `login`, every connection sends AUTH first (credentials.hpp); with `tls`, it runs
// over TLS (tls_options.hpp; the constructor throws if the files cannot be used). Needs Boost.Asio and
// hiredis' RESP formatter and reader (Debian: libhiredis-dev).
#pragma once

#include <uniws/broker.hpp>
#include <uniws/events.hpp>
#include <uniws/message.hpp>
#include <uniws/redis/credentials.hpp>
#include <uniws/redis/tls_options.hpp>
#include <uniws/redis/detail/posted_broker.hpp>
#include <uniws/redis/detail/resp_link.hpp>
#include <uniws/redis/detail/scripts.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/system/error_code.hpp>

#include <hiredis/hiredis.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>

namespace uniws::redis {

/// Where the Redis is, and how the broker keeps and retries.
struct broker_options {
  std::string host;  ///< empty: no Redis, the broker is disabled and the node works alone
  int port = 6379;   ///< the Redis's port
  /// Keys `PREFIX:seq:{USER}`, `PREFIX:h:{USER}` (history), `PREFIX:epoch:{USER}`;
  /// channels `PREFIX:u:USER`.
  std::string prefix = "uniws";
  std::chrono::milliseconds backoff_min{100};   ///< the first reconnect waits this long
  std::chrono::milliseconds backoff_max{5000};  ///< reconnects wait at most this long
  std::size_t history_events = 1024;            ///< per user, about (MAXLEN ~)
  std::chrono::seconds history_age{300};        ///< older events are not replayed; an idle history expires
  credentials login;                            ///< AUTH on every connection, if a password is given
  tls_options tls;                              ///< TLS on every connection, if a CA file is given
  /// Connecting (and AUTH) longer than this fails the attempt; the next waits for the backoff.
  std::chrono::milliseconds connect_timeout{2000};
};

/// A cluster's broker on one Redis (or a Sentinel-managed primary): Lua-stamped seqs,
/// per-user history, pub/sub delivery. Network I/O on its executor; see the top of this file.
class broker : public detail::posted_broker<broker> {
 public:
  /// `ex` should be a strand (or a one-thread io_context): all Redis I/O runs there.
  broker(boost::asio::any_io_executor ex, broker_options options)
      : impl_(std::make_shared<impl>(std::move(ex), std::move(options))) {
    if (impl_->options.host.empty()) return;
    boost::asio::post(impl_->ex, [i = impl_] { i->connect(); });
  }
  /// Moves the running broker.
  broker(broker&&) noexcept = default;
  /// Moves the running broker.
  broker& operator=(broker&&) noexcept = default;
  ~broker() {
    if (impl_) boost::asio::post(impl_->ex, [i = impl_] { i->shut_down(); });
  }

  /// True: a cluster's broker.
  [[nodiscard]] bool enabled() const noexcept { return !impl_->options.host.empty(); }

  /// Publishes through Redis (broker concept); false while Redis is down.
  bool publish(std::string_view user, const agent_event& e, std::uint64_t floor) {
    if (!impl_->connected.load(std::memory_order_acquire)) {
      impl_->stats.add<&broker_stats::publish_failed>();
      return false;
    }
    const message encoded = encode_event(e, 0);
    boost::asio::post(impl_->ex,
                      [i = impl_, user = std::string(user), thread = e.thread_id, encoded, floor]() mutable {
                        i->send_publish(std::move(user), std::move(thread), encoded, floor);
                      });
    return true;
  }

 private:
  friend class detail::posted_broker<broker>;

  struct impl : std::enable_shared_from_this<impl> {
    impl(boost::asio::any_io_executor e, broker_options o)
        : ex(std::move(e)),
          options(std::move(o)),
          tls(options.tls.ca_file.empty() ? nullptr : detail::make_tls_context(options.tls)),
          retry(ex) {}

    boost::asio::any_io_executor ex;
    broker_options options;
    std::shared_ptr<boost::asio::ssl::context> tls;  ///< null: plain TCP
    broker_receiver receiver;
    boost::asio::steady_timer retry;
    std::shared_ptr<detail::resp_link> commands, subscriber;
    bool commands_up = false, subscriber_up = false, stopping = false, ever_connected = false;
    std::chrono::milliseconds backoff{0};
    std::map<std::string, int, std::less<>> subscriptions;  ///< user -> subscribe count
    std::set<std::string, std::less<>> confirmed;           ///< users whose SUBSCRIBE Redis confirmed

    using history_read = detail::history_read;
    std::multimap<std::string, history_read, std::less<>>
        waiting;  ///< reads until their SUBSCRIBE is confirmed
    std::atomic<bool> connected{false};
    std::atomic<bool> refused{false};  ///< the last attempt's credentials were refused
    atomic_stats<broker_stats> stats;  ///< `connected` and `refused` are read from the flags above

    std::string channel(std::string_view user) const { return options.prefix + ":u:" + std::string(user); }
    std::string key(std::string_view kind, std::string_view user) const {
      return options.prefix + ":" + std::string(kind) + ":{" + std::string(user) + "}";
    }

    void connect() {
      if (stopping) return;
      const std::weak_ptr<impl> weak = weak_from_this();
      commands = std::make_shared<detail::resp_link>(ex, link_options());
      subscriber = std::make_shared<detail::resp_link>(ex, link_options(), [weak](const redisReply* r) {
        if (auto self = weak.lock()) self->on_push(r);
      });
      for (detail::resp_link* link : {commands.get(), subscriber.get()})
        link->start(
            options.host, options.port,
            [weak, link] {
              if (auto self = weak.lock()) self->on_up(link);
            },
            [weak, link](detail::link_end why) {
              if (auto self = weak.lock()) self->on_down(link, why);
            });
    }

    detail::link_options link_options() const {
      return {.login = options.login, .connect_timeout = options.connect_timeout, .tls = tls};
    }

    void on_up(const detail::resp_link* link) {
      if (link != commands.get() && link != subscriber.get()) return;  // an old connection
      (link == commands.get() ? commands_up : subscriber_up) = true;
      if (!commands_up || !subscriber_up) return;
      backoff = std::chrono::milliseconds(0);
      refused.store(false, std::memory_order_relaxed);
      if (ever_connected) stats.add<&broker_stats::reconnects>();
      ever_connected = true;
      for (const auto& [user, count] : subscriptions) send_subscribe(user);
      stats.add<&broker_stats::resubscribes>(subscriptions.size());
      connected.store(true, std::memory_order_release);
    }

    void on_down(const detail::resp_link* link, detail::link_end why) {
      if (link != commands.get() && link != subscriber.get()) return;  // an old connection
      if (why == detail::link_end::credentials_refused) stats.add<&broker_stats::auth_failures>();
      if (why == detail::link_end::tls_refused) stats.add<&broker_stats::tls_failures>();
      if (why == detail::link_end::credentials_refused || why == detail::link_end::tls_refused)
        refused.store(true, std::memory_order_relaxed);
      down();
    }

    /// Either connection failed: drop both, retry later.
    void down() {
      connected.store(false, std::memory_order_release);
      answer_waiting();
      commands_up = subscriber_up = false;
      auto c = std::move(commands), s = std::move(subscriber);
      if (c) c->close();
      if (s) s->close();
      if (stopping) return;
      backoff = std::clamp(backoff * 2, options.backoff_min, options.backoff_max);
      retry.expires_after(backoff);
      retry.async_wait([self = shared_from_this()](boost::system::error_code ec) {
        if (!ec) self->connect();
      });
    }

    void shut_down() {
      stopping = true;
      connected.store(false, std::memory_order_release);
      answer_waiting();
      retry.cancel();
      auto c = std::move(commands), s = std::move(subscriber);
      if (c) c->close();
      if (s) s->close();
    }

    void send_publish(std::string user, std::string thread, const message& encoded, std::uint64_t floor) {
      const std::string_view text(encoded.data(), encoded.size());
      constexpr std::string_view seq_field = ",\"seq\":0";
      const auto at = text.find(seq_field);
      if (!commands || !commands_up || at == std::string_view::npos)
        return published(user, thread, encoded, nullptr);
      const std::string seq_key = key("seq", user), chan = channel(user), stream = key("h", user),
                        epoch_key = key("epoch", user), floor_text = std::to_string(floor),
                        route = std::to_string(thread.size()) + " " + thread,
                        new_epoch = history_epoch::random().to_string(),
                        limit = std::to_string(options.history_events),
                        age = std::to_string(options.history_age.count());
      const std::string_view prefix = text.substr(0, at + seq_field.size() - 1),
                             suffix = text.substr(at + seq_field.size());
      commands->send({"EVAL", detail::publish_script, "4", seq_key, chan, stream, epoch_key, floor_text,
                      route, prefix, suffix, new_epoch, limit, thread, age, "PUBLISH"},
                     [self = shared_from_this(), user, thread, encoded](const redisReply* r) {
                       self->published(user, thread, encoded, r);
                     });
    }

    void published(const std::string& user, const std::string& thread, const message& encoded,
                   const redisReply* r) {
      if (r && r->type == REDIS_REPLY_INTEGER) {
        stats.add<&broker_stats::published>();
        return;
      }
      // Lost in flight: this node still delivers it (seq 0: the manager re-stamps it).
      stats.add<&broker_stats::publish_failed>();
      if (!stopping && receiver) receiver(user, thread, 0, encoded);
    }

    /// A join's read: once the user's subscription is confirmed (so no later event can miss
    /// this node), else when it is; answered unanswered while Redis is down.
    void read(history_read q) {
      if (!connected.load(std::memory_order_acquire) || !subscriptions.contains(q.user) || !commands ||
          !commands_up)
        return q.receiver(stored_history{});
      if (!confirmed.contains(q.user)) {
        std::string user = q.user;
        waiting.emplace(std::move(user), std::move(q));
        return;
      }
      const std::string seq_key = key("seq", q.user), stream = key("h", q.user),
                        epoch_key = key("epoch", q.user);
      const std::string after = q.after ? std::to_string(*q.after) : std::string(),
                        new_epoch = history_epoch::random().to_string(),
                        age = std::to_string(options.history_age.count()),
                        limit = std::to_string(options.history_events);
      commands->send(
          {"EVAL", detail::read_script, "3", seq_key, stream, epoch_key, after, new_epoch, q.thread, age,
           limit},
          [receiver = std::move(q.receiver)](const redisReply* r) { receiver(detail::parse_history(r)); });
    }

    /// Redis is gone (or we stop): the joins waiting for a confirmation are answered without it.
    void answer_waiting() {
      confirmed.clear();
      auto reads = std::move(waiting);
      waiting.clear();
      for (auto& [user, q] : reads) q.receiver(stored_history{});
    }

    void on_confirmed(std::string_view user) {
      if (!subscriptions.contains(user)) return;  // unsubscribed since
      confirmed.emplace(user);
      auto [first, last] = waiting.equal_range(user);
      std::vector<history_read> reads;
      for (auto it = first; it != last; ++it) reads.push_back(std::move(it->second));
      waiting.erase(first, last);
      for (history_read& q : reads) read(std::move(q));
    }

    void add_subscription(const std::string& user) {
      if (++subscriptions[user] == 1 && connected.load(std::memory_order_acquire)) send_subscribe(user);
    }
    void drop_subscription(const std::string& user) {
      auto it = subscriptions.find(user);
      if (it == subscriptions.end() || --it->second > 0) return;
      subscriptions.erase(it);
      if (auto c = confirmed.find(user); c != confirmed.end()) confirmed.erase(c);
      auto [first, last] = waiting.equal_range(user);  // no subscription to wait for any more
      std::vector<history_read> reads;
      for (auto w = first; w != last; ++w) reads.push_back(std::move(w->second));
      waiting.erase(first, last);
      for (history_read& q : reads) q.receiver(stored_history{});
      if (subscriber && subscriber_up) subscriber->send({"UNSUBSCRIBE", channel(user)}, nullptr);
    }

    void send_subscribe(const std::string& user) {
      if (subscriber && subscriber_up) subscriber->send({"SUBSCRIBE", channel(user)}, nullptr);
    }

    /// What the subscriber connection gets: ["subscribe", channel, count] confirmations and
    /// ["message", channel, "<seq> <len> <thread><envelope>"].
    void on_push(const redisReply* r) {
      if (stopping || r->type != REDIS_REPLY_ARRAY || r->elements != 3 ||
          r->element[0]->type != REDIS_REPLY_STRING || r->element[1]->type != REDIS_REPLY_STRING)
        return;
      const std::string_view kind(r->element[0]->str, r->element[0]->len);
      const std::string_view chan(r->element[1]->str, r->element[1]->len);
      const std::string_view user = chan.substr(std::min(chan.size(), options.prefix.size() + 3));
      if (kind == "subscribe") return on_confirmed(user);
      if (kind != "message" || r->element[2]->type != REDIS_REPLY_STRING) return;
      const auto m = detail::parse_channel_message(std::string_view(r->element[2]->str, r->element[2]->len));
      if (!m) return;
      stats.add<&broker_stats::received>();
      // Stamped on arrival: delivery latency is measured on this node's clock, from here.
      if (receiver) receiver(user, m->thread, m->seq, message::copy_of(m->envelope, message::clock::now()));
    }
  };

  std::shared_ptr<impl> impl_;
};

static_assert(uniws::broker<broker>);

}  // namespace uniws::redis
