// uniws/asio/detail/frame_writer.hpp - the write side both WebSocket connection types share
// (uniws/beast/connection.hpp, uniws/asio/connection.hpp): a bounded send queue filled from any
// thread, drained on the connection's executor by one writer that frames what is queued itself
// and writes up to 16 frames with one gathered write; a graceful close after the last one; the
// check that cuts off a peer that takes nothing.
//
// The writer: idle -> corked (a send on the connection's executor waits for the end of the
// loop's pass: detail/loop_pass.hpp) -> writing (write_next runs, or a write is out) -> idle
// when the queue is empty. From elsewhere, idle -> writing through a post. Sends while corked
// or writing only queue. A batch the socket takes whole at once (the usual case) costs that
// system call and nothing else; the rest of one it does not take is written asynchronously from
// a batch on the heap, which stays while a backlog lasts.
//
// Derived (CRTP) provides, all called on its executor but get_executor:
//   get_executor()
//   std::optional<std::size_t> write_now(std::span<const const_buffer>, error_code&)
//       what the socket took at once; nullopt when it cannot be written without waiting now
//   void write_later(std::span<const const_buffer>, Handler)   all of it; Handler(ec, n)
//   void write_close_frame(close_code)   the queue is flushed after close(): the close frame
//       goes now (through send_control, or a stream's own close), and the writer stays busy
//   void close_frame_written()   only if Derived sent its close frame through send_control
//   lowest_socket()   the TCP socket, for the stall check and mark_closed
#pragma once

#include <uniws/connection.hpp>
#include <uniws/histogram.hpp>
#include <uniws/message.hpp>
#include <uniws/send_queue.hpp>
#include <uniws/asio/detail/loop_pass.hpp>

#include <boost/asio/buffer.hpp>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/post.hpp>
#include <boost/system/error_code.hpp>

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

namespace uniws::asio::detail {

/// RFC 6455 5.2's opcodes a server sends.
enum class opcode : std::uint8_t { text = 0x1, close = 0x8, ping = 0x9, pong = 0xA };

/// A server's frame header for a final frame of `n` bytes (unmasked; the length in 7, 7+16 or
/// 7+64 bits).
struct frame_header {
  frame_header() = default;
  frame_header(opcode op, std::size_t n) noexcept {
    bytes[0] = static_cast<unsigned char>(0x80 | static_cast<unsigned>(op));
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

/// A control frame waiting for the writer (one at a time: a newer pong replaces an older one).
struct control_frame {
  opcode op = opcode::pong;
  message payload;  ///< empty message: none waiting
};

/// A batch of frames as a server sends them, their payloads not copied.
struct write_batch {
  static constexpr std::size_t capacity = 16;
  /// Takes the waiting control frame, if any, then up to `capacity` of the oldest messages of
  /// `queue` (a control frame may go between messages, never inside one).
  void take_from(std::optional<control_frame>& control, send_queue& queue) noexcept {
    if (control) {
      messages[0] = std::move(control->payload);
      headers[0] = frame_header(control->op, messages[0].size());
      bytes += headers[0].size + messages[0].size();
      size = 1;
      control.reset();
      control_frames = 1;
    }
    const std::size_t taken = queue.take_front(std::span(messages).subspan(size));
    for (std::size_t i = size; i < size + taken; ++i) {
      headers[i] = frame_header(opcode::text, messages[i].size());
      bytes += headers[i].size + messages[i].size();
    }
    size += taken;
  }
  /// Messages of the batch (control frames aside).
  [[nodiscard]] std::size_t message_count() const noexcept { return size - control_frames; }
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
  /// Small frames copied one after the other into this thread's scratch buffer, for one write
  /// of one buffer: the kernel copies a contiguous buffer faster than many small pieces
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
  std::array<message, capacity + 1> messages{};  ///< a control frame first, if any
  std::array<frame_header, capacity + 1> headers{};
  std::array<boost::asio::const_buffer, 2 * (capacity + 1)> list{};
  std::size_t size = 0;
  std::size_t control_frames = 0;
  std::size_t bytes = 0;  ///< of the frames
};

/// What the peer has taken: the bytes its TCP acknowledged so far, and whether any wait.
struct peer_progress {
  std::uint64_t acknowledged = 0;  ///< bytes the peer's TCP acknowledged so far
  bool waiting = false;            ///< bytes it has not acknowledged yet
};

/// Linux; elsewhere 0 and none, so only a write pending in the application counts as waiting,
/// and a write that never completes as no progress.
template <class Socket>
peer_progress progress_of(Socket& socket) noexcept {
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
  if (::getsockopt(socket.native_handle(), IPPROTO_TCP, TCP_INFO, &info, &size) == 0 && size == sizeof info) {
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

template <class Derived>
class frame_writer {
 public:
  frame_writer(const frame_writer&) = delete;
  frame_writer& operator=(const frame_writer&) = delete;

  /// Queues `m` for writing; never blocks, never throws on a closed connection. Called on the
  /// connection's executor, the write waits for the end of this pass of the loop: what the pass
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

  /// The connection ended: nothing more can be written. The descriptor is given back now, not
  /// when the last reference goes (a manager may hold one a while longer).
  void mark_closed() {
    {
      std::lock_guard lock(mutex_);
      state_ = state::closed;
      discard_queued_locked();
      control_.reset();
    }
    boost::asio::dispatch(derived().get_executor(), [self = derived().shared_from_this()] {
      boost::system::error_code ignored;
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

  /// Checks, on the connection's executor, whether the peer has taken any of what was sent to
  /// it (the kernel's acknowledged bytes, not only what the socket buffered) since the last
  /// check that saw progress. If it has taken nothing for `timeout` while bytes were waiting for
  /// it, calls `on_cut()` and cuts the connection off with no close frame (a peer that reads
  /// nothing would never get one): pending operations end with an error, so the read loop and
  /// the writer finish as for a lost peer. Call it periodically, from any thread.
  /// A connection that has written nothing since a check found all it wrote acknowledged is
  /// not checked again (no handler, no system call): at rest a call is one atomic load.
  template <class OnCut>
  void cut_off_if_stalled(std::chrono::steady_clock::duration timeout, OnCut on_cut) {
    if (!has_unsettled_writes()) return;
    boost::asio::post(derived().get_executor(), [self = derived().shared_from_this(), timeout,
                                                 on_cut = std::move(on_cut)]() mutable {
      frame_writer& w = *self;
      auto& socket = self->lowest_socket();
      const auto now = std::chrono::steady_clock::now();
      const peer_progress p = progress_of(socket);
      const bool waiting = p.waiting || w.write_started_.load(std::memory_order_relaxed) != 0;
      const std::uint64_t taken = p.acknowledged;
      if (!waiting || taken != w.bytes_taken_) {
        w.bytes_taken_ = taken;
        w.progress_at_ = now;
        // The writer sets it on this executor too: no write can come between the look above
        // and this store.
        if (!waiting) {
          w.unsettled_.store(false, std::memory_order_relaxed);
          w.release_ring();  // settled: the ring kept for the next pass goes until a backlog
        }
        return;
      }
      if (now - w.progress_at_ < timeout) return;
      on_cut();
      boost::system::error_code ignored;
      socket.close(ignored);
    });
  }

 protected:
  enum class state : std::uint8_t { open, closing, close_sent, closed };

  frame_writer(send_queue_limits limits, delivery_metrics* metrics) : queue_(limits), metrics_(metrics) {}
  ~frame_writer() = default;

  /// Queues a control frame to go before the next message; a newer one replaces one that still
  /// waits. Nothing once the close frame is under way. For Derived, on any thread.
  void send_control(opcode op, message payload) {
    std::unique_lock lock(mutex_);
    if (op != opcode::close && state_ != state::open) return;
    control_ = control_frame{op, std::move(payload)};
    start_writer_locked(lock);
  }

  /// Closes with `code` at once: what is queued is discarded (counted), the close frame goes
  /// next. For a peer that broke the protocol or closed first: it reads nothing more of ours.
  void close_discarding(close_code code) {
    std::unique_lock lock(mutex_);
    if (state_ != state::open) return;
    state_ = state::closing;
    close_code_ = code;
    discard_queued_locked();
    start_writer_locked(lock);
  }

  /// The write side's state, for Derived (e.g. whether it has sent its close frame).
  [[nodiscard]] state write_state() const {
    std::lock_guard lock(mutex_);
    return state_;
  }

  /// For Derived's write_close_frame: the close frame's write has started (or ended).
  void mark_write_started() noexcept {
    unsettled_.store(true, std::memory_order_relaxed);
    write_started_.store(std::chrono::steady_clock::now().time_since_epoch().count(),
                         std::memory_order_relaxed);
  }
  void mark_write_ended() noexcept { write_started_.store(0, std::memory_order_relaxed); }

  /// The writer, on the connection's executor: writes what is queued (see the top of this file).
  void write_next() {
    for (;;) {
      std::unique_lock lock(mutex_);
      if (queue_.empty() && !control_) {
        // A backlog's ring goes; one batch's worth of slots stays, so that a connection sent
        // to pass after pass does not allocate it again each time (128 bytes).
        queue_.shrink_to_fit(write_batch::capacity);
        batch_.reset();
        if (state_ == state::closing) {
          state_ = state::close_sent;  // the writer stays `writing`: nothing else starts
          const close_code code = close_code_;
          lock.unlock();
          return derived().write_close_frame(code);
        }
        if (state_ == state::close_sent) {  // Derived's close frame, sent through send_control
          lock.unlock();
          if constexpr (requires(Derived& d) { d.close_frame_written(); }) derived().close_frame_written();
          return;
        }
        writer_ = writer::idle;
        return;
      }
      if (metrics_) metrics_->queue_bytes.observe(static_cast<std::uint64_t>(queue_.bytes()));
      write_batch batch;
      batch.take_from(control_, queue_);
      lock.unlock();
      boost::system::error_code ec;
      const auto sent = derived().write_now(batch.contiguous(), ec);
      if (sent && *sent == batch.bytes) {
        written(batch);
        continue;
      }
      if (sent && ec && ec != boost::asio::error::would_block && ec != boost::asio::error::try_again)
        return failed(batch.message_count());
      // The socket took part of it or cannot be written at once here: the rest asynchronously.
      if (!batch_) batch_ = std::make_unique<write_batch>();
      *batch_ = std::move(batch);
      mark_write_started();
      derived().write_later(batch_->frames(sent.value_or(0)),
                            [self = derived().shared_from_this()](boost::system::error_code e, std::size_t) {
                              self->on_write(e);
                            });
      return;
    }
  }

 private:
  enum class writer : std::uint8_t { idle, corked, writing };

  Derived& derived() noexcept { return static_cast<Derived&>(*this); }

  void discard_queued_locked() noexcept {
    while (!queue_.empty()) {
      queue_.pop();
      ++discarded_;
    }
  }

  /// Whether this thread runs the connection's executor now (for a strand: inside it), where
  /// the socket may be written without a post.
  [[nodiscard]] bool on_own_executor() noexcept {
    if constexpr (requires { derived().get_executor().running_in_this_thread(); })
      return derived().get_executor().running_in_this_thread();
    else
      return false;
  }

  /// Has what is queued written unless the writer already runs or waits: at the end of this pass
  /// of the loop when on the connection's executor (so the rest of the pass's sends join the
  /// write), else through a post to it.
  void start_writer_locked(std::unique_lock<std::mutex>& lock) {
    if (writer_ != writer::idle) return;
    const bool here = on_own_executor();
    writer_ = here ? writer::corked : writer::writing;
    lock.unlock();
    auto self = derived().shared_from_this();
    if (here)
      loop_pass::flush_at_end(derived().get_executor(), std::move(self),
                              [](void* c) { static_cast<Derived*>(c)->end_of_pass(); });
    else
      boost::asio::post(derived().get_executor(), [self = std::move(self)] { self->write_next(); });
  }

  /// The pass the connection was corked in has ended (normally on its executor).
  void end_of_pass() {
    {
      std::lock_guard lock(mutex_);
      writer_ = writer::writing;
    }
    if (on_own_executor())
      write_next();
    else
      boost::asio::post(derived().get_executor(),
                        [self = derived().shared_from_this()] { self->write_next(); });
  }

  /// Frees the queue's ring if nothing is queued (a settled connection is idle: an idle one
  /// holds no ring).
  void release_ring() {
    std::lock_guard lock(mutex_);
    queue_.shrink_to_fit(0);
  }

  /// Counts a batch written.
  void written(write_batch& batch) {
    if (metrics_) {
      const auto now = message::clock::now();  // once for the batch
      std::array<std::uint64_t, write_batch::capacity + 1> nanoseconds;
      std::size_t n = 0;
      for (std::size_t i = batch.control_frames; i < batch.size; ++i)
        if (batch.messages[i].is_stamped()) {
          const auto ns =
              std::chrono::duration_cast<std::chrono::nanoseconds>(now - batch.messages[i].emitted_at());
          nanoseconds[n++] = static_cast<std::uint64_t>(std::max<std::int64_t>(0, ns.count()));
        }
      metrics_->delivery_seconds.observe(std::span<const std::uint64_t>(nanoseconds.data(), n));
    }
    written_.fetch_add(batch.message_count(), std::memory_order_relaxed);
    writes_.fetch_add(1, std::memory_order_relaxed);
    unsettled_.store(true, std::memory_order_relaxed);
  }

  /// A write failed: the peer is gone (the read side sees it end); nothing more is written.
  void failed(std::size_t in_flight) {
    std::lock_guard lock(mutex_);
    discarded_ += in_flight;
    state_ = state::closed;
    discard_queued_locked();
    control_.reset();
    batch_.reset();
    writer_ = writer::idle;
  }

  void on_write(boost::system::error_code ec) {
    mark_write_ended();
    if (ec) return failed(batch_->message_count());
    written(*batch_);
    *batch_ = write_batch();
    write_next();
  }

  mutable std::mutex mutex_;  ///< guards everything below but batch_ (owned by the writer)
  send_queue queue_;
  std::optional<control_frame> control_;
  state state_ = state::open;
  writer writer_ = writer::idle;
  close_code close_code_ = close_code::normal;
  std::uint64_t discarded_ = 0;
  std::unique_ptr<write_batch> batch_;  ///< owned by the writer: what is being written asynchronously
  std::atomic<std::uint64_t> written_{0}, writes_{0};
  std::atomic<std::chrono::steady_clock::rep> write_started_{0};  ///< 0: no write pending
  /// Set (on the connection's executor) when bytes go to the socket; cleared by a stall check
  /// that finds all of them acknowledged and no write pending: what makes a check worth its post.
  std::atomic<bool> unsettled_{false};
  /// Owned by the connection's executor: what cut_off_if_stalled compares.
  std::uint64_t bytes_taken_ = 0;  ///< the peer's acknowledged bytes at the last progress
  std::chrono::steady_clock::time_point progress_at_{};
  delivery_metrics* const metrics_;
};

}  // namespace uniws::asio::detail
