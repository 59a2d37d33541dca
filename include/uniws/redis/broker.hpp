// uniws/redis/broker.hpp - a uniws::broker on Redis pub/sub (hiredis), driven by an Asio
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
// resubscribes. Needs Boost.Asio and hiredis (Debian: libhiredis-dev).
#pragma once

#include <uniws/broker.hpp>
#include <uniws/events.hpp>
#include <uniws/message.hpp>
#include <uniws/redis/detail/posted_broker.hpp>
#include <uniws/redis/detail/scripts.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/posix/stream_descriptor.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/system/error_code.hpp>

#include <hiredis/async.h>
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
};

namespace detail {

/// One hiredis async context on an Asio executor: hiredis says when it wants to read or
/// write; we wait for readiness on its descriptor and hand control back.
class hiredis_link : public std::enable_shared_from_this<hiredis_link> {
 public:
  using callback = std::function<void(bool up)>;

  explicit hiredis_link(boost::asio::any_io_executor ex) : descriptor_(ex) {}

  /// Starts connecting; `on_state(true)` once connected, `on_state(false)` once it is gone (or
  /// never came). Both on the executor.
  bool start(const std::string& host, int port, callback on_state) {
    ctx_ = redisAsyncConnect(host.c_str(), port);
    if (!ctx_ || ctx_->err) {
      if (ctx_) redisAsyncFree(ctx_);
      ctx_ = nullptr;
      return false;
    }
    // The descriptor first: setting the connect callback already asks to wait for writing.
    boost::system::error_code ec;
    descriptor_.assign(ctx_->c.fd, ec);
    if (ec) {
      redisAsyncFree(ctx_);
      ctx_ = nullptr;
      return false;
    }
    on_state_ = std::move(on_state);
    ctx_->data = this;
    ctx_->ev.data = this;
    ctx_->ev.addRead = [](void* p) { static_cast<hiredis_link*>(p)->want_read(true); };
    ctx_->ev.delRead = [](void* p) { static_cast<hiredis_link*>(p)->want_read(false); };
    ctx_->ev.addWrite = [](void* p) { static_cast<hiredis_link*>(p)->want_write(true); };
    ctx_->ev.delWrite = [](void* p) { static_cast<hiredis_link*>(p)->want_write(false); };
    ctx_->ev.cleanup = [](void* p) { static_cast<hiredis_link*>(p)->cleanup(); };
    redisAsyncSetConnectCallback(ctx_, [](const redisAsyncContext* c, int status) {
      auto* self = static_cast<hiredis_link*>(c->data);
      if (status == REDIS_OK)
        self->on_state_(true);
      else
        self->gone();
    });
    redisAsyncSetDisconnectCallback(
        ctx_, [](const redisAsyncContext* c, int) { static_cast<hiredis_link*>(c->data)->gone(); });
    self_ = shared_from_this();  // alive until hiredis cleans up
    want_write(true);            // the connect completes when the socket is writable
    return true;
  }

  [[nodiscard]] redisAsyncContext* context() const noexcept { return ctx_; }

  /// Frees the context now: pending command callbacks run with a null reply.
  void close() {
    if (ctx_ && !reported_gone_) redisAsyncFree(ctx_);  // once gone, hiredis frees it itself
  }

 private:
  void gone() {
    if (reported_gone_) return;
    reported_gone_ = true;
    if (on_state_) on_state_(false);
  }

  void want_read(bool on) {
    reading_ = on;
    if (on && !read_waiting_) wait(boost::asio::posix::stream_descriptor::wait_read);
  }
  void want_write(bool on) {
    writing_ = on;
    if (on && !write_waiting_) wait(boost::asio::posix::stream_descriptor::wait_write);
  }

  void wait(boost::asio::posix::stream_descriptor::wait_type type) {
    const bool read = type == boost::asio::posix::stream_descriptor::wait_read;
    (read ? read_waiting_ : write_waiting_) = true;
    descriptor_.async_wait(type, [self = shared_from_this(), read](boost::system::error_code ec) {
      (read ? self->read_waiting_ : self->write_waiting_) = false;
      if (ec || !self->ctx_) return;
      if (read && self->reading_)
        redisAsyncHandleRead(self->ctx_);
      else if (!read && self->writing_)
        redisAsyncHandleWrite(self->ctx_);
      // hiredis may have freed the context in there (cleanup() cleared ctx_).
      if (!self->ctx_) return;
      if (read && self->reading_ && !self->read_waiting_)
        self->wait(boost::asio::posix::stream_descriptor::wait_read);
      if (!read && self->writing_ && !self->write_waiting_)
        self->wait(boost::asio::posix::stream_descriptor::wait_write);
    });
  }

  /// hiredis is freeing the context: stop waiting, give the descriptor back (hiredis closes it).
  void cleanup() {
    ctx_ = nullptr;
    reading_ = writing_ = false;
    boost::system::error_code ec;
    descriptor_.cancel(ec);
    descriptor_.release();
    gone();
    boost::asio::post(descriptor_.get_executor(), [self = std::move(self_)] {});  // released after this call
  }

  boost::asio::posix::stream_descriptor descriptor_;
  redisAsyncContext* ctx_ = nullptr;
  callback on_state_;
  std::shared_ptr<hiredis_link> self_;
  bool reading_ = false, writing_ = false, read_waiting_ = false, write_waiting_ = false,
       reported_gone_ = false;
};

}  // namespace detail

/// A cluster's broker on one Redis (or a Sentinel-managed primary): Lua-stamped seqs,
/// per-user history, pub/sub delivery. Network I/O on its own thread; see the top of this file.
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
        : ex(std::move(e)), options(std::move(o)), retry(ex) {}

    boost::asio::any_io_executor ex;
    broker_options options;
    broker_receiver receiver;
    boost::asio::steady_timer retry;
    std::shared_ptr<detail::hiredis_link> commands, subscriber;
    bool commands_up = false, subscriber_up = false, stopping = false, ever_connected = false;
    std::chrono::milliseconds backoff{0};
    std::map<std::string, int, std::less<>> subscriptions;  ///< user -> subscribe count
    std::set<std::string, std::less<>> confirmed;           ///< users whose SUBSCRIBE Redis confirmed

    using history_read = detail::history_read;
    std::multimap<std::string, history_read, std::less<>>
        waiting;  ///< reads until their SUBSCRIBE is confirmed
    std::atomic<bool> connected{false};
    atomic_stats<broker_stats> stats;  ///< `connected` is read from the flag above

    std::string channel(std::string_view user) const { return options.prefix + ":u:" + std::string(user); }
    std::string key(std::string_view kind, std::string_view user) const {
      return options.prefix + ":" + std::string(kind) + ":{" + std::string(user) + "}";
    }

    void connect() {
      if (stopping) return;
      commands = std::make_shared<detail::hiredis_link>(ex);
      subscriber = std::make_shared<detail::hiredis_link>(ex);
      auto self = shared_from_this();
      const bool started =
          commands->start(options.host, options.port,
                          [self, link = commands.get()](bool up) { self->on_state(link, up); }) &&
          subscriber->start(options.host, options.port,
                            [self, link = subscriber.get()](bool up) { self->on_state(link, up); });
      if (!started) down();
    }

    void on_state(detail::hiredis_link* link, bool up) {
      if (link != commands.get() && link != subscriber.get()) return;  // an old connection
      if (!up) return down();
      (link == commands.get() ? commands_up : subscriber_up) = true;
      if (!commands_up || !subscriber_up) return;
      backoff = std::chrono::milliseconds(0);
      if (ever_connected) stats.add<&broker_stats::reconnects>();
      ever_connected = true;
      for (const auto& [user, count] : subscriptions) send_subscribe(user);
      stats.add<&broker_stats::resubscribes>(subscriptions.size());
      connected.store(true, std::memory_order_release);
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

    struct pending_publish {
      std::shared_ptr<impl> owner;
      std::string user, thread;
      message encoded;
    };

    void send_publish(std::string user, std::string thread, const message& encoded, std::uint64_t floor) {
      const std::string_view text(encoded.data(), encoded.size());
      constexpr std::string_view seq_field = ",\"seq\":0";
      const auto at = text.find(seq_field);
      const std::string seq_key = key("seq", user), chan = channel(user);
      const std::string floor_text = std::to_string(floor);
      const std::string route = std::to_string(thread.size()) + " " + thread;
      const std::string_view prefix = text.substr(0, at + seq_field.size() - 1),
                             suffix = text.substr(at + seq_field.size());
      auto* p = new pending_publish{shared_from_this(), std::move(user), std::move(thread), encoded};
      redisAsyncContext* ctx = commands && commands_up ? commands->context() : nullptr;
      const std::string stream = key("h", p->user), epoch_key = key("epoch", p->user);
      const std::string new_epoch = history_epoch::random().to_string(),
                        limit = std::to_string(options.history_events),
                        age = std::to_string(options.history_age.count());
      const std::string_view args[] = {"EVAL",    detail::publish_script,
                                       "4",       seq_key,
                                       chan,      stream,
                                       epoch_key, floor_text,
                                       route,     prefix,
                                       suffix,    new_epoch,
                                       limit,     p->thread,
                                       age,       "PUBLISH"};
      if (!ctx || at == std::string_view::npos || !command(ctx, &on_published, p, args))
        on_published(nullptr, nullptr, p);
    }

    /// One command from its arguments; false if hiredis refused it (the callback is not called).
    template <std::size_t N>
    static bool command(redisAsyncContext* ctx, redisCallbackFn* done, void* privdata,
                        const std::string_view (&args)[N]) {
      const char* argv[N];
      std::size_t lens[N];
      for (std::size_t i = 0; i < N; ++i) {
        argv[i] = args[i].data();
        lens[i] = args[i].size();
      }
      return redisAsyncCommandArgv(ctx, done, privdata, static_cast<int>(N), argv, lens) == REDIS_OK;
    }

    /// A join's read: once the user's subscription is confirmed (so no later event can miss
    /// this node), else when it is; answered unanswered while Redis is down.
    void read(history_read q) {
      if (!connected.load(std::memory_order_acquire) || !subscriptions.contains(q.user))
        return q.receiver(stored_history{});
      if (!confirmed.contains(q.user)) {
        std::string user = q.user;
        waiting.emplace(std::move(user), std::move(q));
        return;
      }
      struct pending_read {
        std::shared_ptr<impl> owner;
        history_read q;
      };
      auto* p = new pending_read{shared_from_this(), std::move(q)};
      const std::string seq_key = key("seq", p->q.user), stream = key("h", p->q.user),
                        epoch_key = key("epoch", p->q.user);
      const std::string after = p->q.after ? std::to_string(*p->q.after) : std::string(),
                        new_epoch = history_epoch::random().to_string(),
                        age = std::to_string(options.history_age.count()),
                        limit = std::to_string(options.history_events);
      const std::string_view args[] = {"EVAL", detail::read_script, "3",         seq_key, stream, epoch_key,
                                       after,  new_epoch,           p->q.thread, age,     limit};
      redisCallbackFn* done = [](redisAsyncContext*, void* r, void* privdata) {
        std::unique_ptr<pending_read> p(static_cast<pending_read*>(privdata));
        p->q.receiver(detail::parse_history(static_cast<const redisReply*>(r)));
      };
      if (!commands || !commands_up || !command(commands->context(), done, p, args))
        done(nullptr, nullptr, p);
    }

    /// Redis is gone (or we stop): the joins waiting for a confirmation are answered without it.
    void answer_waiting() {
      confirmed.clear();
      auto reads = std::move(waiting);
      waiting.clear();
      for (auto& [user, q] : reads) q.receiver(stored_history{});
    }

    static void on_published(redisAsyncContext*, void* r, void* privdata) {
      std::unique_ptr<pending_publish> p(static_cast<pending_publish*>(privdata));
      const auto* reply = static_cast<const redisReply*>(r);
      impl& self = *p->owner;
      if (reply && reply->type == REDIS_REPLY_INTEGER) {
        self.stats.add<&broker_stats::published>();
        return;
      }
      // Lost in flight: this node still delivers it (seq 0: the manager re-stamps it).
      self.stats.add<&broker_stats::publish_failed>();
      if (!self.stopping && self.receiver) self.receiver(p->user, p->thread, 0, p->encoded);
    }

    void on_confirmed(std::string_view user) {
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
      if (subscriber && subscriber_up) {
        const std::string chan = channel(user);
        const char* argv[] = {"UNSUBSCRIBE", chan.c_str()};
        const std::size_t lens[] = {11, chan.size()};
        redisAsyncCommandArgv(subscriber->context(), nullptr, nullptr, 2, argv, lens);
      }
    }

    void send_subscribe(const std::string& user) {
      if (!subscriber || !subscriber_up) return;
      const std::string chan = channel(user);
      const char* argv[] = {"SUBSCRIBE", chan.c_str()};
      const std::size_t lens[] = {9, chan.size()};
      redisAsyncCommandArgv(subscriber->context(), &on_channel, this, 2, argv, lens);
    }

    /// ["message", channel, "<seq> <len> <thread><envelope>"] (and subscribe confirmations).
    static void on_channel(redisAsyncContext*, void* r, void* privdata) {
      const auto* reply = static_cast<const redisReply*>(r);
      auto* self = static_cast<impl*>(privdata);
      if (!reply || reply->type != REDIS_REPLY_ARRAY || reply->elements != 3 || self->stopping) return;
      const std::string_view kind(reply->element[0]->str, reply->element[0]->len);
      const std::string_view chan(reply->element[1]->str, reply->element[1]->len);
      if (kind == "subscribe")
        return self->on_confirmed(chan.substr(std::min(chan.size(), self->options.prefix.size() + 3)));
      if (kind != "message") return;
      const std::string_view user = chan.substr(std::min(chan.size(), self->options.prefix.size() + 3));
      const auto m =
          detail::parse_channel_message(std::string_view(reply->element[2]->str, reply->element[2]->len));
      if (!m) return;
      self->stats.add<&broker_stats::received>();
      // Stamped on arrival: delivery latency is measured on this node's clock, from here.
      if (self->receiver)
        self->receiver(user, m->thread, m->seq, message::copy_of(m->envelope, message::clock::now()));
    }
  };

  std::shared_ptr<impl> impl_;
};

static_assert(uniws::broker<broker>);

}  // namespace uniws::redis
