// uniws/asio/connection.hpp - a WebSocket connection on a bare Asio TCP socket (or a stream over
// one, such as TLS), with uniws's own RFC 6455 framing: the lean alternative to
// uniws/beast/connection.hpp for servers that hold many idle connections.
//
// Contract:
// - The upgrade's HTTP request is the caller's to read and bound (uniws/asio/upgrade.hpp answers
//   it). create() makes the connection; start() writes the answer and starts reading, the bytes
//   that came behind the request first.
// - Session, held inside the connection (one allocation for both), hears of each message
//   (on_message: text or binary, whole) and, once, of the end (on_close), on the socket's
//   executor. It may send and close from there or from anywhere else. If on_message throws,
//   the connection is cut off and on_close heard before the exception leaves the loop's run().
// - Sending, closing, the counters and the stall check are the write side's, shared with the
//   Beast adapter (detail/frame_writer.hpp): bounded queue, one gathered write per loop pass.
// - Pings are answered; the closing handshake is RFC 6455's either way round (the server
//   closes TCP once both close frames have passed); a peer that breaks the protocol gets the
//   close code that says why (detail/websocket_reader.hpp) and nothing more of ours.
// - No timer per connection: check_timeouts(), called by the application's sweeper (once a
//   second, say), pings a quiet peer, cuts one silent past the idle timeout and one that does
//   not finish a closing handshake. At rest it is two atomic loads.
// - Idle, the connection holds no buffer: it waits for readability (async_wait), then reads
//   what the socket has into the thread's buffer. Because it waits with no read pending, the
//   socket's executor must be run by one thread (an io_context per thread), which is the
//   layout this type is for; use the Beast adapter with a strand over a thread pool.
// - Stream is a TCP socket, or a stream over one with `socket()` (the TCP socket),
//   async_read_some/async_write_some, and `std::optional<std::size_t> try_read_some(buffers, ec)`
//   and `try_write_some(buffers, ec)`: what it reads or writes at once, or nullopt when it
//   cannot now (TLS, whose records OpenSSL reads and writes: then a read is kept pending, with
//   a 4 KiB buffer of the connection's own, and every write is asynchronous).
// - What a peer can make it hold: one message of read_message_max (a longer one closes 1009)
//   and the send queue's bound.
#pragma once

#include <uniws/connection.hpp>
#include <uniws/histogram.hpp>
#include <uniws/message.hpp>
#include <uniws/send_queue.hpp>
#include <uniws/asio/detail/frame_writer.hpp>
#include <uniws/detail/websocket_reader.hpp>

#include <boost/asio/bind_allocator.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/error.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/socket_base.hpp>
#include <boost/asio/write.hpp>
#include <boost/system/error_code.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>

namespace uniws::asio {

/// What a message was sent as.
enum class message_kind : std::uint8_t { text, binary };

/// What a connection bounds.
struct connection_options {
  /// The send queue's bound and slow-consumer policy.
  send_queue_limits queue{};
  std::size_t read_message_max = 64 * 1024;  ///< a longer message closes the connection with 1009
  delivery_metrics* metrics = nullptr;       ///< must outlive the connection
};

/// What check_timeouts enforces (the same for every connection of a server, so not stored in
/// each).
struct connection_timeouts {
  /// A connection with nothing read for this long is cut off.
  std::chrono::steady_clock::duration idle = std::chrono::seconds(60);
  /// A closing handshake must finish within this once it has begun.
  std::chrono::steady_clock::duration closing = std::chrono::seconds(5);
  bool keep_alive_pings = true;  ///< ping a peer quiet for half the idle timeout
};

namespace detail {
/// Memory from operator new, exactly what is asked (for handlers that stay pending a long time).
template <class T>
struct exact_allocator {
  using value_type = T;
  exact_allocator() noexcept = default;
  template <class U>
  exact_allocator(const exact_allocator<U>&) noexcept {}  // NOLINT: rebinding converts implicitly
  T* allocate(std::size_t n) { return static_cast<T*>(::operator new(n * sizeof(T))); }
  void deallocate(T* p, std::size_t) noexcept { ::operator delete(p); }
  friend bool operator==(const exact_allocator&, const exact_allocator&) noexcept { return true; }
};

}  // namespace detail

/// What a connection needs of its Session.
template <class S, class Connection>
concept session_for = requires(S& s, Connection& c, std::string_view payload, message_kind kind) {
  s.on_message(c, payload, kind);
  s.on_close(c);
};

/// A WebSocket on `Stream` (a TCP socket, or TLS over one) with the application's per-connection
/// `Session` inside it: see the contract at the top of this header.
template <class Stream, class Session>
class basic_websocket_connection
    : public std::enable_shared_from_this<basic_websocket_connection<Stream, Session>>,
      public detail::frame_writer<basic_websocket_connection<Stream, Session>> {
  using writer_base = detail::frame_writer<basic_websocket_connection>;
  friend writer_base;
  struct private_tag {
    explicit private_tag() = default;
  };

 public:
  using stream_type = Stream;                            ///< what it reads and writes
  using executor_type = typename Stream::executor_type;  ///< where its I/O and the session run
  using session_type = Session;                          ///< the application's state inside it

  /// A connection on an accepted socket whose upgrade request was read; Session is made from
  /// `session_args`. Connections live in shared_ptrs (one allocation with the count).
  template <class... SessionArgs>
  static std::shared_ptr<basic_websocket_connection> create(connection_id id, Stream stream,
                                                            connection_options options,
                                                            SessionArgs&&... session_args) {
    static_assert(session_for<Session, basic_websocket_connection>,
                  "Session needs on_message(connection&, std::string_view, message_kind) and "
                  "on_close(connection&)");
    return std::make_shared<basic_websocket_connection>(private_tag{}, id, std::move(stream), options,
                                                        std::forward<SessionArgs>(session_args)...);
  }

  /// For create() only: the tag cannot be named outside.
  template <class... SessionArgs>
  basic_websocket_connection(private_tag, connection_id id, Stream stream, const connection_options& options,
                             SessionArgs&&... session_args)
      : writer_base(options.queue, options.metrics),
        id_(id),
        stream_(std::move(stream)),
        reader_(options.read_message_max),
        session_(std::forward<SessionArgs>(session_args)...) {
    boost::system::error_code ignored;
    lowest_socket().non_blocking(true, ignored);  // written and read at once when the socket can
  }

  /// Its id (given at create).
  [[nodiscard]] connection_id id() const noexcept { return id_; }
  /// The application's state for this connection.
  [[nodiscard]] Session& session() noexcept { return session_; }
  /// The socket's executor: where the session is called and the connection does its I/O.
  [[nodiscard]] executor_type get_executor() noexcept { return stream_.get_executor(); }
  /// The stream (for what it is: e.g. whether it is TLS).
  [[nodiscard]] Stream& stream() noexcept { return stream_; }

  /// On the socket's executor, once: writes `response` (the upgrade's 101, from
  /// uniws/asio/upgrade.hpp), then reads the WebSocket, `early` (bytes read behind the request)
  /// first.
  void start(std::string response, std::string early = {}) {
    boost::system::error_code ec;
    const boost::asio::const_buffer whole(response.data(), response.size());
    const std::optional<std::size_t> n = write_now(std::span(&whole, 1), ec);
    if (ec && ec != boost::asio::error::would_block && ec != boost::asio::error::try_again) return end();
    if (n == response.size()) return begin_reading(early);
    // Not taken whole at once (TLS, or a full socket: rare): the rest the simple way.
    auto rest = std::make_shared<std::pair<std::string, std::string>>(response.substr(n.value_or(0)),
                                                                      std::move(early));
    boost::asio::async_write(
        stream_, boost::asio::buffer(rest->first),
        [self = this->shared_from_this(), rest](boost::system::error_code e, std::size_t) {
          if (e) return self->end();
          self->begin_reading(rest->second);
        });
  }

  /// What check_timeouts did.
  enum class timeout_action : std::uint8_t { none, pinged, cut_idle, cut_closing };

  /// From any thread, periodically: pings a peer quiet for half of `t.idle`, cuts off one quiet
  /// for all of it (with pings, only once a ping went unanswered until this check), and one
  /// whose closing handshake takes longer than `t.closing`. Posts only when there is something
  /// to do; says what it did (for the caller's counters).
  timeout_action check_timeouts(const connection_timeouts& t, std::chrono::steady_clock::time_point now) {
    const phase p = phase_.load(std::memory_order_relaxed);
    const auto quiet = now - std::chrono::steady_clock::time_point(std::chrono::steady_clock::duration(
                                 last_read_.load(std::memory_order_relaxed)));
    if (p == phase::open) {
      // With pings, a peer is cut off only after one it left unanswered until a later check: a
      // check that comes late (a busy loop) and finds it silent for all of t.idle, never pinged,
      // pings it first. A peer that answers pings is never cut, however the checks fall.
      if (t.keep_alive_pings && quiet >= t.idle / 2 &&
          !ping_sent_.exchange(true, std::memory_order_relaxed)) {
        this->send_control(detail::opcode::ping, message());
        return timeout_action::pinged;
      }
      if (quiet >= t.idle) {
        cut();
        return timeout_action::cut_idle;
      }
    } else if ((p == phase::peer_done || p == phase::close_written) && quiet >= t.closing) {
      cut();  // last_read_ stopped at the handshake's start
      return timeout_action::cut_closing;
    }
    return timeout_action::none;
  }

  /// Cuts the connection off with no close frame, from any thread: the read side ends and the
  /// session hears on_close.
  void cut() {
    boost::asio::post(get_executor(), [self = this->shared_from_this()] {
      boost::system::error_code ignored;
      self->lowest_socket().close(ignored);
    });
  }

 private:
  /// The read side and the closing handshake. open -> peer_done (the peer sent its close frame,
  /// or broke the protocol: ours goes back, nothing more is read) -> teardown once ours is
  /// written; open -> close_written (ours went first) -> teardown at the peer's; any -> ended
  /// when the socket ends (teardown included). Set on the executor; check_timeouts reads it.
  enum class phase : std::uint8_t { upgrading, open, peer_done, close_written, ended };

  // The shared write side's hooks (detail/frame_writer.hpp).
  std::optional<std::size_t> write_now(std::span<const boost::asio::const_buffer> frames,
                                       boost::system::error_code& ec) {
    if constexpr (requires { stream_.try_write_some(frames, ec); })
      return stream_.try_write_some(frames, ec);
    else
      return stream_.write_some(frames, ec);
  }
  template <class Handler>
  void write_later(std::span<const boost::asio::const_buffer> frames, Handler handler) {
    boost::asio::async_write(stream_, frames, std::move(handler));
  }
  void write_close_frame(close_code code) {
    const auto c = static_cast<std::uint16_t>(code);
    const char payload[2] = {static_cast<char>(c >> 8), static_cast<char>(c & 0xFF)};
    this->send_control(detail::opcode::close, message::copy_of(std::string_view(payload, 2)));
    this->write_next();
  }
  void close_frame_written() {
    if (phase_.load(std::memory_order_relaxed) == phase::peer_done) return teardown();
    enter(phase::close_written);
  }
  /// The TCP socket.
  auto& lowest_socket() noexcept {
    if constexpr (requires { stream_.socket().native_handle(); })
      return stream_.socket();
    else
      return stream_;
  }

  /// What the stream reads at once: nullopt when it cannot (TLS).
  std::optional<std::size_t> read_now(boost::asio::mutable_buffer b, boost::system::error_code& ec) {
    if constexpr (requires { stream_.try_read_some(b, ec); })
      return stream_.try_read_some(b, ec);
    else
      return stream_.read_some(b, ec);
  }

  void enter(phase p) noexcept {
    if (p == phase::peer_done || p == phase::close_written)  // the closing handshake's clock
      last_read_.store(std::chrono::steady_clock::now().time_since_epoch().count(),
                       std::memory_order_relaxed);
    phase_.store(p, std::memory_order_relaxed);
  }

  void begin_reading(std::string_view early) {
    enter(phase::open);
    mark_read();
    if (!early.empty() && !consume({reinterpret_cast<const unsigned char*>(early.data()), early.size()}))
      return;
    on_readable({});
  }

  void mark_read() noexcept {
    last_read_.store(std::chrono::steady_clock::now().time_since_epoch().count(), std::memory_order_relaxed);
    ping_sent_.store(false, std::memory_order_relaxed);
  }

  /// Reads what the socket has, then waits for more. The socket is read until it has nothing
  /// (a wait registered with bytes unread would not be woken by them), 64 KiB at most before
  /// the loop's other handlers get a turn.
  void on_readable(boost::system::error_code ec) {
    if (ec) return end();
    thread_local std::array<unsigned char, 16 * 1024> buffer;
    for (int round = 0;; ++round) {
      if (round == 4) {
        boost::asio::post(get_executor(), [self = this->shared_from_this()] { self->on_readable({}); });
        return;
      }
      const std::optional<std::size_t> n = read_now(boost::asio::buffer(buffer), ec);
      if (!n) return read_later();
      if (ec == boost::asio::error::would_block || ec == boost::asio::error::try_again) break;
      if (ec) return end();  // the peer went (end of stream included), or the socket was cut
      if (phase_.load(std::memory_order_relaxed) == phase::open) mark_read();
      if (!consume({buffer.data(), *n})) return;
    }
    // The wait's memory is exactly its size: Asio's default reuses the block the thread freed
    // last, so an idle connection's wait would keep an HTTP read's (~290 bytes) while it waits.
    lowest_socket().async_wait(
        boost::asio::socket_base::wait_read,
        boost::asio::bind_allocator(
            detail::exact_allocator<void>(),
            [self = this->shared_from_this()](boost::system::error_code e) { self->on_readable(e); }));
  }

  /// For a stream that cannot be read at once (TLS): a read kept pending, into a buffer of the
  /// connection's own.
  void read_later() {
    if (!pending_read_buffer_) pending_read_buffer_ = std::make_unique<std::array<unsigned char, 4096>>();
    stream_.async_read_some(boost::asio::buffer(*pending_read_buffer_),
                            [self = this->shared_from_this()](boost::system::error_code ec, std::size_t n) {
                              if (ec) return self->end();
                              if (self->phase_.load(std::memory_order_relaxed) == phase::open)
                                self->mark_read();
                              if (self->consume({self->pending_read_buffer_->data(), n})) self->read_later();
                            });
  }

  /// Acts on what the peer sent; false once the connection has ended.
  bool consume(std::span<const unsigned char> bytes) {
    using event = uniws::detail::websocket_reader::event;
    while (!bytes.empty()) {
      const phase p = phase_.load(std::memory_order_relaxed);
      if (p == phase::ended) return false;
      if (p == phase::peer_done) return true;  // what follows a close or a broken frame is ignored
      const auto [what, used] = reader_.read(bytes);
      bytes = bytes.subspan(used);
      switch (what) {
        case event::need_more:
          break;
        case event::text:
        case event::binary: {
          const std::string m = reader_.take_message();
          if (p == phase::open)  // not once our close frame has gone
            deliver(m, what == event::text ? message_kind::text : message_kind::binary);
          break;
        }
        case event::ping:
          this->send_control(detail::opcode::pong, message::copy_of(reader_.control_payload()));
          break;
        case event::pong:
          break;
        case event::close:
          on_peer_close(reader_.close_code());
          break;
        case event::failed:
          enter(phase::peer_done);
          this->close_discarding(static_cast<close_code>(reader_.failure_close_code()));
          break;
      }
    }
    return phase_.load(std::memory_order_relaxed) != phase::ended;
  }

  /// A session that throws leaves its connection unable to go on (no read is pending): the
  /// connection ends first, cut off and on_close heard, so that the session's registrations go
  /// with it; then the exception leaves the handler, and the loop's run(), as Asio's do.
  void deliver(std::string_view m, message_kind kind) {
    try {
      session_.on_message(*this, m, kind);
    } catch (...) {
      end();  // closes the socket
      throw;
    }
  }

  void on_peer_close(std::uint16_t code) {
    if (phase_.load(std::memory_order_relaxed) == phase::close_written) return teardown();
    enter(phase::peer_done);
    // Its code goes back (RFC 6455 5.5.1); none (1005) is answered with 1000. What is queued
    // would not be read: discarded and counted. If ours is already on its way, it answers.
    this->close_discarding(static_cast<close_code>(code == 1005 ? 1000 : code));
  }

  /// Both close frames have passed: the server closes TCP first (RFC 6455 7.1.1).
  void teardown() {
    boost::system::error_code ignored;
    lowest_socket().shutdown(boost::asio::socket_base::shutdown_both, ignored);
    end();
  }

  /// The connection has ended: the socket is closed and the session told, once.
  void end() {
    if (phase_.exchange(phase::ended, std::memory_order_relaxed) == phase::ended) return;
    this->mark_closed();
    session_.on_close(*this);
  }

  const connection_id id_;
  Stream stream_;
  uniws::detail::websocket_reader reader_;
  std::unique_ptr<std::array<unsigned char, 4096>> pending_read_buffer_;  ///< TLS only
  std::atomic<phase> phase_{phase::upgrading};
  std::atomic<bool> ping_sent_{false};  ///< since the last read
  /// steady_clock's count at the last read (open) or at the closing handshake's start.
  std::atomic<std::chrono::steady_clock::rep> last_read_{0};
  Session session_;
};

/// On a socket of an io_context run by one thread (the executor's type named: smaller).
template <class Session>
using websocket_connection = basic_websocket_connection<
    boost::asio::basic_stream_socket<boost::asio::ip::tcp, boost::asio::io_context::executor_type>, Session>;

}  // namespace uniws::asio
