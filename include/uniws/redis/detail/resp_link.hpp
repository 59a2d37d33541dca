// uniws/redis/detail/resp_link.hpp - one connection to one Redis node on an Asio executor,
// speaking RESP through hiredis' formatter and reader (no hiredis context, so no assumption
// about which commands put a connection into subscriber mode: hiredis 0.14 knows SUBSCRIBE
// but not SSUBSCRIBE).
//
// Commands are answered in the order they were sent (Redis' contract); a link made with
// `push_handler` also hands every array whose first element names a pub/sub notification
// (smessage, ssubscribe, sunsubscribe, message, subscribe, unsubscribe) to that handler
// instead, since a subscribed connection gets those between its replies. Every callback runs
// on the executor; a link that fails answers its pending commands with nullptr, then calls
// `on_down` once, saying why (link_end).
//
// A link is up only once Redis answered its first command: AUTH with credentials, else PING
// (a Redis that wants a password says NOAUTH there). Connecting and that answer together are
// bounded by `connect_timeout` (a black-holed address does not wait for the kernel's minutes).
// With a TLS context, the TLS handshake comes first and verifies the server's certificate
// (its CA, and the host or IP address connected to); the link is then one OpenSSL stream.
#pragma once

#include <uniws/redis/credentials.hpp>
#include <uniws/redis/tls_options.hpp>

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/address.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/host_name_verification.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>

#include <hiredis/hiredis.h>

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

namespace uniws::redis::detail {

/// A reply hiredis parsed; freed when the handler returns.
using reply_handler = std::function<void(const redisReply*)>;

/// Why a link ended: on_down's argument.
enum class link_end : std::uint8_t {
  lost,                 ///< it was up; then a read or write failed, or Redis sent nonsense
  unreachable,          ///< no address, or the connection was refused
  timed_out,            ///< not up within connect_timeout (connecting, or waiting for the first answer)
  credentials_refused,  ///< AUTH was answered with an error, or PING with NOAUTH
  tls_refused,          ///< the TLS handshake failed: a certificate from another CA or for another name
};

/// The client side of TLS from `o`, made once per broker; throws std::runtime_error naming the
/// file it could not use.
inline std::shared_ptr<boost::asio::ssl::context> make_tls_context(const tls_options& o) {
  namespace ssl = boost::asio::ssl;
  auto context = std::make_shared<ssl::context>(ssl::context::tls_client);
  context->set_options(ssl::context::default_workarounds | ssl::context::no_tlsv1 | ssl::context::no_tlsv1_1);
  boost::system::error_code ec;
  if (context->load_verify_file(o.ca_file, ec); ec)
    throw std::runtime_error("redis TLS: cannot load the CA file " + o.ca_file + ": " + ec.message());
  if (!o.cert_file.empty()) {
    if (context->use_certificate_chain_file(o.cert_file, ec); ec)
      throw std::runtime_error("redis TLS: cannot load the certificate " + o.cert_file + ": " + ec.message());
    if (context->use_private_key_file(o.key_file, ssl::context::pem, ec); ec)
      throw std::runtime_error("redis TLS: cannot load the key " + o.key_file + ": " + ec.message());
  }
  context->set_verify_mode(ssl::verify_peer | ssl::verify_fail_if_no_peer_cert);
  return context;
}

/// How a link connects.
struct link_options {
  credentials login;                                ///< AUTH first, if a password is given
  std::chrono::milliseconds connect_timeout{2000};  ///< connecting, TLS and AUTH together, at most
  std::shared_ptr<boost::asio::ssl::context> tls;   ///< TLS with this context; null: plain TCP
};

class resp_link : public std::enable_shared_from_this<resp_link> {
 public:
  using down_handler = std::function<void(link_end)>;

  resp_link(boost::asio::any_io_executor ex, link_options options, reply_handler push_handler = {})
      : stream_(options.tls ? stream(std::in_place_type<tls_stream>, ex, *options.tls)
                            : stream(std::in_place_type<plain_stream>, ex)),
        resolver_(ex),
        deadline_(ex),
        options_(std::move(options)),
        push_(std::move(push_handler)),
        reader_(redisReaderCreate()) {}
  resp_link(const resp_link&) = delete;
  resp_link& operator=(const resp_link&) = delete;
  ~resp_link() { redisReaderFree(reader_); }

  /// Connects (and logs in); `on_up` once Redis would take commands, `on_down` once the link
  /// is gone (or never came).
  void start(std::string host, int port, std::function<void()> on_up, down_handler on_down) {
    on_down_ = std::move(on_down);
    deadline_.expires_after(options_.connect_timeout);
    deadline_.async_wait([weak = weak_from_this()](boost::system::error_code ec) {
      if (auto self = weak.lock(); self && !ec && !self->up_) self->fail(link_end::timed_out);
    });
    resolver_.async_resolve(
        std::move(host), std::to_string(port),
        [self = shared_from_this(), on_up = std::move(on_up)](boost::system::error_code ec, auto endpoints) {
          if (ec || self->closed_) return self->fail(link_end::unreachable);
          boost::asio::async_connect(
              self->socket(), endpoints,
              [self, on_up, host = endpoints.begin()->host_name()](boost::system::error_code e, const auto&) {
                if (e || self->closed_) return self->fail(link_end::unreachable);
                boost::system::error_code ignored;
                self->socket().set_option(boost::asio::ip::tcp::no_delay(true), ignored);
                auto* tls = std::get_if<tls_stream>(&self->stream_);
                if (!tls) return self->connected(on_up);
                self->secure(*tls, host, on_up);
              });
        });
  }

  [[nodiscard]] bool up() const noexcept { return up_ && !closed_; }

  /// Sends one command; `done` gets its reply (nullptr if the link fails first). Commands sent
  /// before the link is up wait for it. A null `done` is for commands answered by pushes.
  void send(std::initializer_list<std::string_view> args, reply_handler done) {
    std::vector<std::string_view> v(args);
    send(v, std::move(done));
  }
  void send(const std::vector<std::string_view>& args, reply_handler done) {
    if (closed_) {
      if (done) done(nullptr);
      return;
    }
    if (!format(args, outgoing_)) {
      if (done) done(nullptr);
      return;
    }
    if (done || !push_) waiting_.push_back(std::move(done));
    flush();
  }

  /// Closes the link: pending commands are answered with nullptr, `on_down` is not called.
  void close() {
    on_down_ = nullptr;
    fail(link_end::lost);
  }

 private:
  using plain_stream = boost::asio::ip::tcp::socket;
  using tls_stream = boost::asio::ssl::stream<boost::asio::ip::tcp::socket>;
  using stream = std::variant<plain_stream, tls_stream>;

  boost::asio::ip::tcp::socket& socket() {
    return std::visit(
        [](auto& s) -> boost::asio::ip::tcp::socket& {
          if constexpr (std::is_same_v<std::decay_t<decltype(s)>, tls_stream>)
            return s.next_layer();
          else
            return s;
        },
        stream_);
  }

  /// The TLS handshake: the certificate must chain to the CA and name `host` (a name, sent as
  /// SNI too, or an IP address).
  void secure(tls_stream& tls, const std::string& host, std::function<void()> on_up) {
    boost::system::error_code ec;
    boost::asio::ip::make_address(host, ec);
    if (ec) SSL_set_tlsext_host_name(tls.native_handle(), host.c_str());  // SNI is for names only
    tls.set_verify_callback(boost::asio::ssl::host_name_verification(host));
    tls.async_handshake(boost::asio::ssl::stream_base::client,
                        [self = shared_from_this(), on_up = std::move(on_up)](boost::system::error_code e) {
                          if (self->closed_) return;
                          if (e) return self->fail(link_end::tls_refused);
                          self->connected(on_up);
                        });
  }

  void connected(std::function<void()> on_up) {
    read();
    hand_shake(std::move(on_up));
  }

  void now_up(const std::function<void()>& on_up) {
    up_ = true;
    deadline_.cancel();
    flush();
    if (on_up) on_up();
  }

  /// The first command, written alone: AUTH with credentials, else PING, so that a Redis which
  /// wants a password says so now (NOAUTH) rather than to every later command. What was sent
  /// before the link was up waits in `outgoing_` for the answer: a Redis without a password
  /// answers AUTH with an error but would run the commands behind it.
  void hand_shake(std::function<void()> on_up) {
    const credentials& c = options_.login;
    std::vector<std::string_view> args{"PING"};
    if (!c.password.empty()) {
      args = {"AUTH"};
      if (!c.user.empty()) args.emplace_back(c.user);
      args.emplace_back(c.password);
    }
    if (!format(args, in_flight_)) return fail(link_end::credentials_refused);
    // Weak: a handler the link keeps must not keep the link (a Redis that never answers and a
    // loop that stops would leak it); the pending read keeps it alive while it runs.
    waiting_.push_front([weak = weak_from_this(), on_up = std::move(on_up)](const redisReply* r) {
      auto self = weak.lock();
      if (!r || !self) return;  // the link failed first
      if (r->type != REDIS_REPLY_ERROR) return self->now_up(on_up);
      // AUTH refused (WRONGPASS, or a password given to a Redis without one), or NOAUTH to PING;
      // anything else (LOADING: a restarting Redis) is worth another try soon.
      const std::string_view error(r->str, r->len);
      const bool refused = !self->options_.login.password.empty() || error.starts_with("NOAUTH");
      self->fail(refused ? link_end::credentials_refused : link_end::lost);
    });
    write();
  }

  /// Appends the command in RESP to `out`; false if hiredis could not format it.
  static bool format(const std::vector<std::string_view>& args, std::string& out) {
    std::vector<const char*> argv;
    std::vector<std::size_t> lens;
    for (std::string_view a : args) {
      argv.push_back(a.data());
      lens.push_back(a.size());
    }
    char* formatted = nullptr;
    const int n = redisFormatCommandArgv(&formatted, static_cast<int>(argv.size()), argv.data(), lens.data());
    if (n < 0) return false;
    out.append(formatted, static_cast<std::size_t>(n));
    redisFreeCommand(formatted);
    return true;
  }

  void flush() {
    if (!up_ || closed_ || writing_ || outgoing_.empty()) return;
    in_flight_.swap(outgoing_);
    outgoing_.clear();
    write();
  }

  /// Writes `in_flight_`, then whatever was sent meanwhile.
  void write() {
    writing_ = true;
    std::visit(
        [this](auto& s) {
          boost::asio::async_write(s, boost::asio::buffer(in_flight_),
                                   [self = shared_from_this()](boost::system::error_code ec, std::size_t) {
                                     self->writing_ = false;
                                     self->in_flight_.clear();
                                     if (ec) return self->fail(link_end::lost);
                                     self->flush();
                                   });
        },
        stream_);
  }

  void read() {
    std::visit(
        [this](auto& s) {
          s.async_read_some(boost::asio::buffer(buffer_),
                            [self = shared_from_this()](boost::system::error_code ec, std::size_t n) {
                              self->received(ec, n);
                            });
        },
        stream_);
  }

  void received(boost::system::error_code ec, std::size_t n) {
    if (ec || closed_) return fail(link_end::lost);
    if (redisReaderFeed(reader_, buffer_.data(), n) != REDIS_OK) return fail(link_end::lost);
    for (;;) {
      void* r = nullptr;
      if (redisReaderGetReply(reader_, &r) != REDIS_OK) return fail(link_end::lost);
      if (!r) break;
      std::unique_ptr<redisReply, void (*)(void*)> reply(static_cast<redisReply*>(r), freeReplyObject);
      dispatch(reply.get());
      if (closed_) return;
    }
    read();
  }

  static bool is_push(const redisReply* r) {
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 3 || r->element[0]->type != REDIS_REPLY_STRING)
      return false;
    const std::string_view kind(r->element[0]->str, r->element[0]->len);
    return kind == "smessage" || kind == "ssubscribe" || kind == "sunsubscribe" || kind == "message" ||
           kind == "subscribe" || kind == "unsubscribe";
  }

  void dispatch(const redisReply* r) {
    if (push_ && is_push(r)) return push_(r);
    if (waiting_.empty()) return push_ ? push_(r) : fail(link_end::lost);  // a reply nobody asked for
    reply_handler done = std::move(waiting_.front());
    waiting_.pop_front();
    if (done) done(r);
  }

  void fail(link_end why) {
    if (closed_) return;
    closed_ = true;
    up_ = false;
    boost::system::error_code ignored;
    socket().close(ignored);  // TLS too: no close_notify, the link is gone either way
    resolver_.cancel();
    deadline_.cancel();
    auto waiting = std::move(waiting_);
    waiting_.clear();
    for (auto& done : waiting)
      if (done) done(nullptr);
    if (auto down = std::move(on_down_)) down(why);
  }

  stream stream_;
  boost::asio::ip::tcp::resolver resolver_;
  boost::asio::steady_timer deadline_;
  link_options options_;
  reply_handler push_;
  down_handler on_down_;
  redisReader* reader_;
  std::deque<reply_handler> waiting_;
  std::string outgoing_, in_flight_;
  std::array<char, 16384> buffer_;
  bool up_ = false, closed_ = false, writing_ = false;
};

}  // namespace uniws::redis::detail
