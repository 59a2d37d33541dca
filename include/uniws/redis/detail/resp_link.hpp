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
// `on_down` once.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>

#include <hiredis/hiredis.h>

#include <array>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace uniws::redis::detail {

/// A reply hiredis parsed; freed when the handler returns.
using reply_handler = std::function<void(const redisReply*)>;

class resp_link : public std::enable_shared_from_this<resp_link> {
 public:
  resp_link(boost::asio::any_io_executor ex, reply_handler push_handler = {})
      : socket_(ex), resolver_(ex), push_(std::move(push_handler)), reader_(redisReaderCreate()) {}
  resp_link(const resp_link&) = delete;
  resp_link& operator=(const resp_link&) = delete;
  ~resp_link() { redisReaderFree(reader_); }

  /// Connects; `on_up` once connected, `on_down` once the link is gone (or never came).
  void start(std::string host, int port, std::function<void()> on_up, std::function<void()> on_down) {
    on_down_ = std::move(on_down);
    resolver_.async_resolve(
        std::move(host), std::to_string(port),
        [self = shared_from_this(), on_up = std::move(on_up)](boost::system::error_code ec, auto endpoints) {
          if (ec || self->closed_) return self->fail();
          boost::asio::async_connect(
              self->socket_, endpoints, [self, on_up](boost::system::error_code e, const auto&) {
                if (e || self->closed_) return self->fail();
                boost::system::error_code ignored;
                self->socket_.set_option(boost::asio::ip::tcp::no_delay(true), ignored);
                self->up_ = true;
                self->read();
                self->flush();
                if (on_up) on_up();
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
    std::vector<const char*> argv;
    std::vector<std::size_t> lens;
    for (std::string_view a : args) {
      argv.push_back(a.data());
      lens.push_back(a.size());
    }
    char* formatted = nullptr;
    const int n = redisFormatCommandArgv(&formatted, static_cast<int>(argv.size()), argv.data(), lens.data());
    if (n < 0) {
      if (done) done(nullptr);
      return;
    }
    outgoing_.append(formatted, static_cast<std::size_t>(n));
    redisFreeCommand(formatted);
    if (done || !push_) waiting_.push_back(std::move(done));
    flush();
  }

  /// Closes the link: pending commands are answered with nullptr, `on_down` is not called.
  void close() {
    on_down_ = nullptr;
    fail();
  }

 private:
  void flush() {
    if (!up_ || closed_ || writing_ || outgoing_.empty()) return;
    writing_ = true;
    in_flight_.swap(outgoing_);
    outgoing_.clear();
    boost::asio::async_write(socket_, boost::asio::buffer(in_flight_),
                             [self = shared_from_this()](boost::system::error_code ec, std::size_t) {
                               self->writing_ = false;
                               self->in_flight_.clear();
                               if (ec) return self->fail();
                               self->flush();
                             });
  }

  void read() {
    socket_.async_read_some(boost::asio::buffer(buffer_), [self = shared_from_this()](
                                                              boost::system::error_code ec, std::size_t n) {
      if (ec || self->closed_) return self->fail();
      if (redisReaderFeed(self->reader_, self->buffer_.data(), n) != REDIS_OK) return self->fail();
      for (;;) {
        void* r = nullptr;
        if (redisReaderGetReply(self->reader_, &r) != REDIS_OK) return self->fail();
        if (!r) break;
        std::unique_ptr<redisReply, void (*)(void*)> reply(static_cast<redisReply*>(r), freeReplyObject);
        self->dispatch(reply.get());
        if (self->closed_) return;
      }
      self->read();
    });
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
    if (waiting_.empty()) return push_ ? push_(r) : fail();  // a reply nobody asked for
    reply_handler done = std::move(waiting_.front());
    waiting_.pop_front();
    if (done) done(r);
  }

  void fail() {
    if (closed_) return;
    closed_ = true;
    up_ = false;
    boost::system::error_code ignored;
    socket_.close(ignored);
    resolver_.cancel();
    auto waiting = std::move(waiting_);
    waiting_.clear();
    for (auto& done : waiting)
      if (done) done(nullptr);
    if (auto down = std::move(on_down_)) down();
  }

  boost::asio::ip::tcp::socket socket_;
  boost::asio::ip::tcp::resolver resolver_;
  reply_handler push_;
  std::function<void()> on_down_;
  redisReader* reader_;
  std::deque<reply_handler> waiting_;
  std::string outgoing_, in_flight_;
  std::array<char, 16384> buffer_;
  bool up_ = false, closed_ = false, writing_ = false;
};

}  // namespace uniws::redis::detail
