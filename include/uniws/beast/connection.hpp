// uniws/beast/connection.hpp - makes a Boost.Beast WebSocket stream a uniws::connection.
//
// try_send may be called from any thread (the manager fans out from wherever the agent
// runs). It only queues, under the connection's bound and slow-consumer policy; all I/O
// happens on the stream's executor, which should be a strand: one write at a time, queued
// messages flushed before a graceful close, the close frame sent after the last one.
//
// Server side. Beast reads, answers pings and closes; the connection frames its text messages
// itself and writes everything queued (up to 16 messages) with one gathered write: one system
// call per batch where Beast's async_write takes one per message, which is most of what a
// delivery costs (benchmarks/RESULTS.md, "End to end").
//
// NextLayer is beast::tcp_stream by default. A server holding many idle connections does
// better with a bare socket whose executor type is named, e.g.
// basic_stream_socket<tcp, strand<io_context::executor_type>> (Beast's WebSocket keeps its
// own timers): examples/golden_path/ does so (server_state.hpp; its cost: benchmarks/RESULTS.md).
//
// What a peer can make it hold: one message of read_message_max (64 KiB; larger closes 1009)
// and the send queue's bound (send_queue_limits, shared ones through queue_budget). The HTTP
// upgrade request comes before it and is the caller's to read: bound it there, with a
// flat_buffer of fixed capacity (chunk lines and trailers otherwise grow without limit),
// header_limit and body_limit, as examples/golden_path/http_session.hpp does (16 KiB, 8 KiB,
// 16 KiB).
#pragma once

#include <uniws/connection.hpp>
#include <uniws/histogram.hpp>
#include <uniws/message.hpp>
#include <uniws/send_queue.hpp>
#include <uniws/beast/detail/turn_taking_stream.hpp>

#include <boost/asio/buffer.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/role.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/websocket/rfc6455.hpp>
#include <boost/beast/websocket/stream.hpp>

#if defined(__linux__)
#include <netinet/in.h>
#include <linux/sockios.h>
#include <netinet/tcp.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#endif

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <span>
#include <utility>

namespace uniws::beast {

/// How a Beast connection bounds what it holds and how long it waits.
struct connection_options {
  /// The send queue's bound and slow-consumer policy.
  send_queue_limits queue{};
  std::size_t read_message_max = 64 * 1024;  ///< a bigger frame closes the connection with 1009
  /// The upgrade must complete within this.
  std::chrono::steady_clock::duration handshake_timeout = std::chrono::seconds(10);
  /// A connection with nothing read for this long is closed.
  std::chrono::steady_clock::duration idle_timeout = std::chrono::seconds(60);
  bool keep_alive_pings = true;         ///< ping an idle peer at half the idle timeout
  delivery_metrics* metrics = nullptr;  ///< must outlive the connection
};

/// A Boost.Beast WebSocket stream as a uniws::connection (see the top of this file).
template <class NextLayer = boost::beast::tcp_stream>
class basic_websocket_connection
    : public std::enable_shared_from_this<basic_websocket_connection<NextLayer>> {
 public:
  /// Beast's stream over NextLayer, through a layer that lets the connection's own writes and
  /// Beast's take turns (detail/turn_taking_stream.hpp).
  using stream_type = boost::beast::websocket::stream<detail::turn_taking_stream<NextLayer>>;

  /// Connections live in shared_ptrs: pending writes keep theirs alive.
  /// One allocation for the connection and its count: an idle connection is mostly memory.
  static std::shared_ptr<basic_websocket_connection> create(connection_id id, NextLayer next,
                                                            connection_options options = {}) {
    auto c =
        std::make_shared<basic_websocket_connection>(private_tag{}, id, std::move(next), std::move(options));
    c->ws_.next_layer().set_owner(c);
    return c;
  }

  basic_websocket_connection(const basic_websocket_connection&) = delete;
  basic_websocket_connection& operator=(const basic_websocket_connection&) = delete;

  /// Its id (given at create).
  [[nodiscard]] connection_id id() const noexcept { return id_; }

  /// The stream, for the handshake and the read loop (on its executor).
  [[nodiscard]] stream_type& stream() noexcept { return ws_; }

  /// Queues `m` for writing; never blocks, never throws on a closed connection.
  send_result try_send(message m) {
    std::unique_lock lock(mutex_);
    if (state_ != state::open) return send_result::closed;
    const send_result r = queue_.push(std::move(m));
    if (r == send_result::closed_slow) {
      // The reader is too slow to flush to: drop what it has not read (counted) and close.
      state_ = state::closing;
      close_code_ = queue_.limits().slow_close_code;
      discard_queued_locked();
    }
    kick_locked(lock);
    return r;
  }

  /// Graceful close: what is queued is written first, then the close frame with `code`.
  void close(close_code code) {
    std::unique_lock lock(mutex_);
    if (state_ != state::open) return;
    state_ = state::closing;
    close_code_ = code;
    kick_locked(lock);
  }

  /// The read loop saw the connection end: nothing more can be written. The descriptor is
  /// given back now, not when the last reference goes (a manager may hold one a while longer).
  void mark_closed() {
    {
      std::lock_guard lock(mutex_);
      state_ = state::closed;
      discard_queued_locked();
    }
    boost::asio::dispatch(ws_.get_executor(), [self = this->shared_from_this()] {
      boost::beast::error_code ignored;
      self->lowest_socket().close(ignored);
    });
  }

  /// Whether the WebSocket is open.
  [[nodiscard]] bool is_open() const {
    std::lock_guard lock(mutex_);
    return state_ == state::open;
  }
  /// Messages the queue dropped to stay within its bound.
  [[nodiscard]] std::uint64_t dropped() const {
    std::lock_guard lock(mutex_);
    return queue_.dropped();
  }
  /// Messages accepted but never written because the connection closed first.
  [[nodiscard]] std::uint64_t discarded() const {
    std::lock_guard lock(mutex_);
    return discarded_;
  }
  /// Messages written to the socket.
  [[nodiscard]] std::uint64_t messages_written() const noexcept {
    return written_.load(std::memory_order_relaxed);
  }
  /// Writes completed: each carries up to 16 messages with one gathered write.
  [[nodiscard]] std::uint64_t writes() const noexcept { return writes_.load(std::memory_order_relaxed); }

  /// Checks, on the stream's executor, whether the peer has taken any of what was sent to it
  /// (the kernel's acknowledged bytes, not only what the socket buffered) since the last check
  /// that saw progress. If it has taken nothing for `timeout` while bytes were waiting for it,
  /// calls `on_cut()` and cuts the connection off with no close frame (a peer that reads
  /// nothing would never get one): pending operations end with an error, so the read loop and
  /// the write loop finish as for a lost peer. Call it periodically, from any thread.
  template <class OnCut>
  void cut_off_if_stalled(std::chrono::steady_clock::duration timeout, OnCut on_cut) {
    boost::asio::post(ws_.get_executor(), [self = this->shared_from_this(), timeout,
                                           on_cut = std::move(on_cut)]() mutable {
      auto& socket = self->lowest_socket();
      const auto now = std::chrono::steady_clock::now();
      const peer_progress p = progress_of(socket);
      const bool waiting = p.unacknowledged > 0 || self->write_started_.load(std::memory_order_relaxed) != 0;
      const std::uint64_t taken = p.acknowledged;
      if (!waiting || taken != self->bytes_taken_) {
        self->bytes_taken_ = taken;
        self->progress_at_ = now;
        return;
      }
      if (now - self->progress_at_ < timeout) return;
      on_cut();
      boost::beast::error_code ignored;
      socket.close(ignored);
    });
  }

 private:
  enum class state : std::uint8_t { open, closing, close_sent, closed };

  struct private_tag {
    explicit private_tag() = default;
  };

 public:
  /// For create() only: the tag cannot be named outside.
  basic_websocket_connection(private_tag, connection_id id, NextLayer next, connection_options options)
      : id_(id), ws_(std::move(next)), queue_(options.queue), metrics_(options.metrics) {
    ws_.read_message_max(options.read_message_max);
    boost::beast::websocket::stream_base::timeout timeouts{};
    timeouts.handshake_timeout = options.handshake_timeout;
    timeouts.idle_timeout = options.idle_timeout;
    timeouts.keep_alive_pings = options.keep_alive_pings;
    ws_.set_option(timeouts);
  }

 private:
  void discard_queued_locked() noexcept {
    while (!queue_.empty()) {
      queue_.pop();
      ++discarded_;
    }
  }

  /// Starts the write loop on the stream's executor unless it is already running.
  void kick_locked(std::unique_lock<std::mutex>& lock) {
    if (writing_) return;
    writing_ = true;
    lock.unlock();
    boost::asio::post(ws_.get_executor(), [self = this->shared_from_this()] { self->write_next(false); });
  }

  /// Writes what is queued: up to write_batch::capacity messages, framed here, with one gathered
  /// write. `after_write`: called as the previous write completed.
  void write_next(bool after_write) {
    std::unique_lock lock(mutex_);
    if (queue_.empty()) {
      queue_.shrink_to_fit();  // an idle connection keeps no ring
      batch_.reset();          // nor a batch
      set_corked(false);
      if (state_ == state::closing) {
        state_ = state::close_sent;  // writing_ stays set: nothing else starts
        lock.unlock();
        mark_write_started();
        ws_.async_close(boost::beast::websocket::close_reason(static_cast<std::uint16_t>(close_code_)),
                        [self = this->shared_from_this()](boost::beast::error_code) {
                          self->write_started_.store(0, std::memory_order_relaxed);
                          self->mark_closed();
                        });
        return;
      }
      writing_ = false;
      return;
    }
    if (metrics_) metrics_->queue_bytes.observe(static_cast<std::uint64_t>(queue_.bytes()));
    if (!batch_) batch_ = std::make_unique<write_batch>();
    while (!queue_.empty() && batch_->size < write_batch::capacity) {
      batch_->add(queue_.front());
      queue_.pop();
    }
    lock.unlock();
    // Messages that queued up while the last write was out are a backlog: corked, the kernel
    // packs it and what follows into full segments; uncorking when the queue empties pushes
    // the rest at once, so a lone message is never held back.
    if (after_write) set_corked(true);
    mark_write_started();
    ws_.next_layer().async_write_frames(
        batch_->buffers(),
        [self = this->shared_from_this()](boost::beast::error_code ec, std::size_t) { self->on_write(ec); });
  }

  /// A batch of messages as the frames a server sends (RFC 6455 5.2: FIN, text, unmasked; the
  /// length in 7, 7+16 or 7+64 bits), their payloads not copied.
  struct write_batch {
    static constexpr std::size_t capacity = 16;
    void add(message m) {
      unsigned char* h = headers[size].data();
      const std::size_t n = m.size();
      std::size_t length = 2;
      h[0] = 0x81;
      if (n < 126) {
        h[1] = static_cast<unsigned char>(n);
      } else if (n < 65536) {
        h[1] = 126;
        h[2] = static_cast<unsigned char>(n >> 8);
        h[3] = static_cast<unsigned char>(n);
        length = 4;
      } else {
        h[1] = 127;
        for (int i = 0; i < 8; ++i)
          h[2 + i] = static_cast<unsigned char>(static_cast<std::uint64_t>(n) >> (56 - 8 * i));
        length = 10;
      }
      list[2 * size] = boost::asio::const_buffer(h, length);
      list[2 * size + 1] = boost::asio::const_buffer(m.data(), n);
      messages[size++] = std::move(m);
    }
    [[nodiscard]] std::span<const boost::asio::const_buffer> buffers() const noexcept {
      return {list.data(), 2 * size};
    }
    std::array<message, capacity> messages{};
    std::array<std::array<unsigned char, 10>, capacity> headers{};
    std::array<boost::asio::const_buffer, 2 * capacity> list{};
    std::size_t size = 0;
  };

  /// While a backlog is being written, TCP_CORK lets the kernel put several writes into one
  /// segment instead of sending each on its own (TCP_NODELAY would).
  void set_corked(bool on) {
#if defined(__linux__) && defined(TCP_CORK)
    if constexpr (requires { lowest_socket().native_handle(); }) {
      if (on == corked_) return;
      corked_ = on;
      const int value = on ? 1 : 0;
      ::setsockopt(lowest_socket().native_handle(), IPPROTO_TCP, TCP_CORK, &value, sizeof value);
    }
#else
    (void)on;
#endif
  }

  /// The socket under the WebSocket (and TLS, if any).
  auto& lowest_socket() {
    auto& lowest = boost::beast::get_lowest_layer(ws_);
    if constexpr (requires { lowest.socket().native_handle(); })
      return lowest.socket();
    else
      return lowest;
  }

  /// What the peer has taken: the bytes its TCP acknowledged so far, and those it has not yet.
  /// Linux; elsewhere both 0, so only a write pending in the application counts as waiting, and
  /// a write that never completes as no progress.
  struct peer_progress {
    std::uint64_t acknowledged = 0, unacknowledged = 0;
  };
  template <class Socket>
  static peer_progress progress_of(Socket& socket) noexcept {
    peer_progress p;
#if defined(__linux__) && defined(SIOCOUTQ) && defined(TCP_INFO)
    if (!socket.is_open()) return p;
    int queued = 0;
    if (::ioctl(socket.native_handle(), SIOCOUTQ, &queued) == 0 && queued > 0)
      p.unacknowledged = static_cast<std::uint64_t>(queued);
    // The kernel's tcp_info only grows at its end: glibc's struct is its prefix (to
    // tcpi_total_retrans), and tcpi_bytes_acked (Linux 4.1) follows two pacing rates.
    struct {
      ::tcp_info prefix;
      std::uint64_t pacing_rate, max_pacing_rate, bytes_acked;
    } info{};
    socklen_t size = sizeof info;
    if (::getsockopt(socket.native_handle(), IPPROTO_TCP, TCP_INFO, &info, &size) == 0 && size == sizeof info)
      p.acknowledged = info.bytes_acked;
#else
    (void)socket;
#endif
    return p;
  }

  void mark_write_started() noexcept {
    write_started_.store(std::chrono::steady_clock::now().time_since_epoch().count(),
                         std::memory_order_relaxed);
  }

  void on_write(boost::beast::error_code ec) {
    write_started_.store(0, std::memory_order_relaxed);
    const std::size_t n = batch_->size;
    if (!ec && metrics_) {
      const auto now = message::clock::now();
      for (std::size_t i = 0; i < n; ++i)
        if (batch_->messages[i].is_stamped())
          metrics_->delivery_seconds.observe(now - batch_->messages[i].emitted_at());
    }
    for (std::size_t i = 0; i < n; ++i) batch_->messages[i] = message();
    batch_->size = 0;
    if (ec) {
      std::lock_guard lock(mutex_);
      discarded_ += n;  // the messages in flight
      state_ = state::closed;
      discard_queued_locked();
      batch_.reset();
      writing_ = false;
      return;
    }
    written_.fetch_add(n, std::memory_order_relaxed);
    writes_.fetch_add(1, std::memory_order_relaxed);
    write_next(true);
  }

  const connection_id id_;
  stream_type ws_;
  mutable std::mutex mutex_;  ///< guards everything below but batch_ (owned by the write loop)
  send_queue queue_;
  state state_ = state::open;
  close_code close_code_ = close_code::normal;
  bool writing_ = false;
  std::uint64_t discarded_ = 0;
  std::unique_ptr<write_batch> batch_;  ///< owned by the write loop: what is being written
  bool corked_ = false;                 ///< owned by the write loop
  std::atomic<std::uint64_t> written_{0}, writes_{0};
  std::atomic<std::chrono::steady_clock::rep> write_started_{0};  ///< 0: no write pending
  /// Owned by the stream's executor: what cut_off_if_stalled compares.
  std::uint64_t bytes_taken_ = 0;  ///< the peer's acknowledged bytes at the last progress
  std::chrono::steady_clock::time_point progress_at_{};
  delivery_metrics* const metrics_;
};

using websocket_connection = basic_websocket_connection<>;

}  // namespace uniws::beast
