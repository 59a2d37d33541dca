// uniws/beast/connection.hpp - makes a Boost.Beast WebSocket stream a uniws::connection.
//
// try_send may be called from any thread (the manager fans out from wherever the agent
// runs). It only queues, under the connection's bound and slow-consumer policy; all I/O
// happens on the stream's executor, which must run the connection's handlers one at a time (a
// strand, or a loop run by one thread): one write at a time, queued messages flushed before a
// graceful close, the close frame sent after the last one.
//
// Server side. Beast reads, answers pings and closes; the connection frames its text messages
// itself and writes what is queued (up to 16 messages) with one gathered write, at once when
// the socket takes it (a system call and nothing else), asynchronously for the rest.
// A send made on the stream's executor (the agent runs on the connection's loop) is corked
// until the loop's current pass ends (detail/loop_pass.hpp): what a pass sends a connection,
// one paced event or a whole burst, costs it one system call, with no post per connection and
// no timer holding a lone event back. A send from elsewhere is posted to the executor.
// (benchmarks/RESULTS.md, "End to end".)
//
// NextLayer is beast::tcp_stream by default. A server does better with a bare socket whose
// executor type is named, e.g. basic_stream_socket<tcp, io_context::executor_type> on a loop run
// by one thread (Beast's WebSocket keeps its own timers): smaller while idle, and written at
// once without a post. examples/golden_path/ does so (event_loops.hpp, server_stream.hpp; its
// cost: benchmarks/RESULTS.md). Writes at once need the layer below to write without waiting:
// a socket, or a layer with try_write_some (detail/turn_taking_stream.hpp); otherwise, as
// under TLS, every write is asynchronous.
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
#include <uniws/beast/detail/loop_pass.hpp>
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
#include <netinet/tcp.h>
#include <sys/socket.h>
#endif

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
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

  /// Queues `m` for writing; never blocks, never throws on a closed connection. Called on the
  /// stream's executor, the write waits for the end of this pass of the loop: what the pass
  /// sends this connection goes out with one gathered write, at once if the socket takes it.
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
    start_writer_locked(lock);
    return r;
  }

  /// Graceful close: what is queued is written first, then the close frame with `code`.
  void close(close_code code) {
    std::unique_lock lock(mutex_);
    if (state_ != state::open) return;
    state_ = state::closing;
    close_code_ = code;
    start_writer_locked(lock);
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

  /// Whether bytes went to the socket since a stall check last found all of them acknowledged
  /// with no write pending: only then does cut_off_if_stalled look at the connection.
  [[nodiscard]] bool has_unsettled_writes() const noexcept {
    return unsettled_.load(std::memory_order_relaxed);
  }

  /// Checks, on the stream's executor, whether the peer has taken any of what was sent to it
  /// (the kernel's acknowledged bytes, not only what the socket buffered) since the last check
  /// that saw progress. If it has taken nothing for `timeout` while bytes were waiting for it,
  /// calls `on_cut()` and cuts the connection off with no close frame (a peer that reads
  /// nothing would never get one): pending operations end with an error, so the read loop and
  /// the write loop finish as for a lost peer. Call it periodically, from any thread.
  /// A connection that has written nothing since a check found all it wrote acknowledged is
  /// not checked again (no handler, no system call): at rest a call is one atomic load.
  template <class OnCut>
  void cut_off_if_stalled(std::chrono::steady_clock::duration timeout, OnCut on_cut) {
    if (!has_unsettled_writes()) return;
    boost::asio::post(
        ws_.get_executor(), [self = this->shared_from_this(), timeout, on_cut = std::move(on_cut)]() mutable {
          auto& socket = self->lowest_socket();
          const auto now = std::chrono::steady_clock::now();
          const peer_progress p = progress_of(socket);
          const bool waiting = p.waiting || self->write_started_.load(std::memory_order_relaxed) != 0;
          const std::uint64_t taken = p.acknowledged;
          if (!waiting || taken != self->bytes_taken_) {
            self->bytes_taken_ = taken;
            self->progress_at_ = now;
            // The writer sets it on this executor too: no write can come between the look above
            // and this store.
            if (!waiting) self->unsettled_.store(false, std::memory_order_relaxed);
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
  /// The write side: idle -> corked (on the stream's executor: waits for the end of the loop's
  /// pass) -> writing (write_next runs, or a write is out) -> idle when the queue is empty.
  /// From elsewhere, idle -> writing through a post. Sends while corked or writing only queue.
  enum class writer : std::uint8_t { idle, corked, writing };

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

  /// Whether this thread runs the stream's executor now (for a strand: inside it), where the
  /// socket may be written without a post.
  [[nodiscard]] bool on_stream_executor() noexcept {
    if constexpr (requires { ws_.get_executor().running_in_this_thread(); })
      return ws_.get_executor().running_in_this_thread();
    else
      return false;
  }

  /// Has what is queued written unless the writer already runs or waits: at the end of this pass
  /// of the loop when on the stream's executor (so the rest of the pass's sends join the write),
  /// else through a post to it.
  void start_writer_locked(std::unique_lock<std::mutex>& lock) {
    if (writer_ != writer::idle) return;
    const bool here = on_stream_executor();
    writer_ = here ? writer::corked : writer::writing;
    lock.unlock();
    auto self = this->shared_from_this();
    if (here)
      detail::loop_pass::flush_at_end(ws_.get_executor(), std::move(self), [](void* c) {
        static_cast<basic_websocket_connection*>(c)->end_of_pass();
      });
    else
      boost::asio::post(ws_.get_executor(), [self = std::move(self)] { self->write_next(); });
  }

  /// The pass the connection was corked in has ended (normally on its executor).
  void end_of_pass() {
    {
      std::lock_guard lock(mutex_);
      writer_ = writer::writing;
    }
    if (on_stream_executor())
      write_next();
    else
      boost::asio::post(ws_.get_executor(), [self = this->shared_from_this()] { self->write_next(); });
  }

  /// The writer, on the stream's executor: writes what is queued, up to write_batch::capacity
  /// messages at a time, framed here, each batch with one gathered write. A batch the socket
  /// takes whole at once (the usual case) costs that system call and nothing else; the rest of
  /// one it does not take is written asynchronously from a batch on the heap, which stays
  /// while a backlog lasts.
  void write_next() {
    for (;;) {
      std::unique_lock lock(mutex_);
      if (queue_.empty()) {
        // A backlog's ring goes; one batch's worth of slots stays, so that a connection sent
        // to pass after pass does not allocate it again each time (128 bytes).
        queue_.shrink_to_fit(write_batch::capacity);
        batch_.reset();
        if (state_ == state::closing) {
          state_ = state::close_sent;  // the writer stays `writing`: nothing else starts
          lock.unlock();
          mark_write_started();
          ws_.async_close(boost::beast::websocket::close_reason(static_cast<std::uint16_t>(close_code_)),
                          [self = this->shared_from_this()](boost::beast::error_code) {
                            self->write_started_.store(0, std::memory_order_relaxed);
                            self->mark_closed();
                          });
          return;
        }
        writer_ = writer::idle;
        return;
      }
      if (metrics_) metrics_->queue_bytes.observe(static_cast<std::uint64_t>(queue_.bytes()));
      write_batch batch;
      batch.take_from(queue_);
      lock.unlock();
      boost::beast::error_code ec;
      const auto sent = ws_.next_layer().try_write_frames(batch.contiguous(), ec);
      if (sent && *sent == batch.bytes) {
        written(batch);
        continue;
      }
      if (sent && ec && ec != boost::asio::error::would_block && ec != boost::asio::error::try_again)
        return failed(batch.size);
      // The socket took part of it or cannot be written at once here: the rest asynchronously.
      if (!batch_) batch_ = std::make_unique<write_batch>();
      *batch_ = std::move(batch);
      mark_write_started();
      ws_.next_layer().async_write_frames(
          batch_->frames(sent.value_or(0)),
          [self = this->shared_from_this()](boost::beast::error_code ec, std::size_t) {
            self->on_write(ec);
          });
      return;
    }
  }

  /// A server's frame header for a text message of `n` bytes (RFC 6455 5.2: FIN, text, unmasked;
  /// the length in 7, 7+16 or 7+64 bits).
  struct frame_header {
    frame_header() = default;
    explicit frame_header(std::size_t n) noexcept {
      bytes[0] = 0x81;
      if (n < 126) {
        bytes[1] = static_cast<unsigned char>(n);
      } else if (n < 65536) {
        bytes[1] = 126;
        bytes[2] = static_cast<unsigned char>(n >> 8);
        bytes[3] = static_cast<unsigned char>(n);
        size = 4;
      } else {
        bytes[1] = 127;
        for (int i = 0; i < 8; ++i)
          bytes[2 + i] = static_cast<unsigned char>(static_cast<std::uint64_t>(n) >> (56 - 8 * i));
        size = 10;
      }
    }
    [[nodiscard]] boost::asio::const_buffer buffer() const noexcept { return {bytes.data(), size}; }
    std::array<unsigned char, 10> bytes{};
    std::size_t size = 2;
  };

  /// A batch of messages as the frames a server sends, their payloads not copied.
  struct write_batch {
    static constexpr std::size_t capacity = 16;
    /// Takes up to `capacity` of the oldest messages of `queue`.
    void take_from(send_queue& queue) noexcept {
      size = queue.take_front(messages);
      for (std::size_t i = 0; i < size; ++i) {
        headers[i] = frame_header(messages[i].size());
        bytes += headers[i].size + messages[i].size();
      }
    }
    /// The frames as buffers, but their first `skip` bytes (written already); valid until the
    /// next call.
    [[nodiscard]] std::span<const boost::asio::const_buffer> frames(std::size_t skip) noexcept {
      std::size_t n = 0;
      for (std::size_t i = 0; i < size; ++i) {
        const boost::asio::const_buffer parts[] = {
            headers[i].buffer(), boost::asio::const_buffer(messages[i].data(), messages[i].size())};
        for (const boost::asio::const_buffer& b : parts) {
          const std::size_t drop = std::min(skip, b.size());
          skip -= drop;
          if (drop < b.size()) list[n++] = b + drop;
        }
      }
      return {list.data(), n};
    }
    /// Small frames copied one after the other into this thread's scratch buffer, for one
    /// write of one buffer: the kernel copies a contiguous buffer faster than many small pieces
    /// (uWebSockets corks the same way). Larger batches: their frames as they are.
    [[nodiscard]] std::span<const boost::asio::const_buffer> contiguous() noexcept {
      thread_local std::array<unsigned char, 16 * 1024> scratch;
      if (bytes > scratch.size()) return frames(0);
      unsigned char* out = scratch.data();
      for (const boost::asio::const_buffer& b : frames(0)) {
        std::memcpy(out, b.data(), b.size());
        out += b.size();
      }
      list[0] = boost::asio::const_buffer(scratch.data(), bytes);
      return {list.data(), 1};
    }
    std::array<message, capacity> messages{};
    std::array<frame_header, capacity> headers{};
    std::array<boost::asio::const_buffer, 2 * capacity> list{};
    std::size_t size = 0;
    std::size_t bytes = 0;  ///< of the frames
  };

  /// The socket under the WebSocket (and TLS, if any).
  auto& lowest_socket() {
    auto& lowest = boost::beast::get_lowest_layer(ws_);
    if constexpr (requires { lowest.socket().native_handle(); })
      return lowest.socket();
    else
      return lowest;
  }

  /// What the peer has taken: the bytes its TCP acknowledged so far, and whether any wait.
  /// Linux; elsewhere 0 and none, so only a write pending in the application counts as waiting, and
  /// a write that never completes as no progress.
  struct peer_progress {
    std::uint64_t acknowledged = 0;  ///< bytes the peer's TCP acknowledged so far
    bool waiting = false;            ///< bytes it has not acknowledged yet
  };
  template <class Socket>
  static peer_progress progress_of(Socket& socket) noexcept {
    peer_progress p;
#if defined(__linux__) && defined(TCP_INFO)
    if (!socket.is_open()) return p;
    // One system call (a stall check runs once a second for every connection that wrote). The
    // kernel's tcp_info only grows at its end: glibc's struct is its prefix (to
    // tcpi_total_retrans); tcpi_bytes_acked (Linux 4.1) and tcpi_notsent_bytes (4.6) follow.
    struct {
      ::tcp_info prefix;
      std::uint64_t pacing_rate, max_pacing_rate, bytes_acked, bytes_received;
      std::uint32_t segs_out, segs_in, notsent_bytes;
    } info{};
    socklen_t size = sizeof info;
    if (::getsockopt(socket.native_handle(), IPPROTO_TCP, TCP_INFO, &info, &size) == 0 &&
        size == sizeof info) {
      p.acknowledged = info.bytes_acked;
      // Sent and not acknowledged (segments in flight), or not sent yet (the peer's window is
      // shut): either way the peer has not taken it.
      p.waiting = info.prefix.tcpi_unacked > 0 || info.notsent_bytes > 0;
    }
#else
    (void)socket;
#endif
    return p;
  }

  void mark_write_started() noexcept {
    unsettled_.store(true, std::memory_order_relaxed);
    write_started_.store(std::chrono::steady_clock::now().time_since_epoch().count(),
                         std::memory_order_relaxed);
  }

  /// Counts a batch written.
  void written(write_batch& batch) {
    if (metrics_) {
      const auto now = message::clock::now();  // once for the batch
      std::array<std::uint64_t, write_batch::capacity> nanoseconds;
      std::size_t n = 0;
      for (std::size_t i = 0; i < batch.size; ++i)
        if (batch.messages[i].is_stamped()) {
          const auto ns =
              std::chrono::duration_cast<std::chrono::nanoseconds>(now - batch.messages[i].emitted_at());
          nanoseconds[n++] = static_cast<std::uint64_t>(std::max<std::int64_t>(0, ns.count()));
        }
      metrics_->delivery_seconds.observe(std::span<const std::uint64_t>(nanoseconds.data(), n));
    }
    written_.fetch_add(batch.size, std::memory_order_relaxed);
    writes_.fetch_add(1, std::memory_order_relaxed);
    unsettled_.store(true, std::memory_order_relaxed);
  }

  /// A write failed: the peer is gone (the read loop sees it end); nothing more is written.
  void failed(std::size_t in_flight) {
    std::lock_guard lock(mutex_);
    discarded_ += in_flight;
    state_ = state::closed;
    discard_queued_locked();
    batch_.reset();
    writer_ = writer::idle;
  }

  void on_write(boost::beast::error_code ec) {
    write_started_.store(0, std::memory_order_relaxed);
    if (ec) return failed(batch_->size);
    written(*batch_);
    *batch_ = write_batch();
    write_next();
  }

  const connection_id id_;
  stream_type ws_;
  mutable std::mutex mutex_;  ///< guards everything below but batch_ (owned by the write loop)
  send_queue queue_;
  state state_ = state::open;
  writer writer_ = writer::idle;
  close_code close_code_ = close_code::normal;
  std::uint64_t discarded_ = 0;
  std::unique_ptr<write_batch> batch_;  ///< owned by the writer: what is being written asynchronously
  std::atomic<std::uint64_t> written_{0}, writes_{0};
  std::atomic<std::chrono::steady_clock::rep> write_started_{0};  ///< 0: no write pending
  /// Set (on the stream's executor) when bytes go to the socket; cleared by a stall check that
  /// finds all of them acknowledged and no write pending: what makes a check worth its post.
  std::atomic<bool> unsettled_{false};
  /// Owned by the stream's executor: what cut_off_if_stalled compares.
  std::uint64_t bytes_taken_ = 0;  ///< the peer's acknowledged bytes at the last progress
  std::chrono::steady_clock::time_point progress_at_{};
  delivery_metrics* const metrics_;
};

using websocket_connection = basic_websocket_connection<>;

}  // namespace uniws::beast
