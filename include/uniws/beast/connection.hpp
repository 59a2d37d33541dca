// uniws/beast/connection.hpp - makes a Boost.Beast WebSocket stream a uniws::connection.
//
// try_send may be called from any thread (the manager fans out from wherever the agent
// runs). It only queues, under the connection's bound and slow-consumer policy; all I/O
// happens on the stream's executor, which must run the connection's handlers one at a time (a
// strand, or a loop run by one thread): one write at a time, queued messages flushed before a
// graceful close, the close frame sent after the last one.
//
// Server side. Beast reads, answers pings and closes; the connection frames its text messages
// itself (uniws/asio/detail/frame_writer.hpp, the write side it shares with uniws/asio/) and writes what is
// queued (up to 16 messages) with one gathered write, at once when the socket takes it (a system call and
// nothing else), asynchronously for the rest. A send made on the stream's executor (the agent runs on the
// connection's loop) is corked until the loop's current pass ends (uniws/asio/detail/loop_pass.hpp): what a
// pass sends a connection, one paced event or a whole burst, costs it one system call, with no post per
// connection and no timer holding a lone event back. A send from elsewhere is posted to the executor.
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
#include <uniws/send_queue.hpp>
#include <uniws/asio/detail/frame_writer.hpp>
#include <uniws/beast/detail/turn_taking_stream.hpp>

#include <boost/asio/buffer.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/role.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/websocket/rfc6455.hpp>
#include <boost/beast/websocket/stream.hpp>

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
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

/// A Boost.Beast WebSocket stream as a uniws::connection (see the top of this file). Sending,
/// closing, the counters and the stall check are the shared write side's
/// (uniws/asio/detail/frame_writer.hpp).
template <class NextLayer = boost::beast::tcp_stream>
class basic_websocket_connection : public std::enable_shared_from_this<basic_websocket_connection<NextLayer>>,
                                   public asio::detail::frame_writer<basic_websocket_connection<NextLayer>> {
  using writer_base = asio::detail::frame_writer<basic_websocket_connection>;
  friend writer_base;

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

  /// Its id (given at create).
  [[nodiscard]] connection_id id() const noexcept { return id_; }

  /// The stream, for the handshake and the read loop (on its executor).
  [[nodiscard]] stream_type& stream() noexcept { return ws_; }

  /// The read loop saw the connection end: nothing more can be written, and the descriptor is
  /// given back now.
  using writer_base::mark_closed;

 private:
  struct private_tag {
    explicit private_tag() = default;
  };

 public:
  /// For create() only: the tag cannot be named outside.
  basic_websocket_connection(private_tag, connection_id id, NextLayer next, connection_options options)
      : writer_base(options.queue, options.metrics), id_(id), ws_(std::move(next)) {
    ws_.read_message_max(options.read_message_max);
    boost::beast::websocket::stream_base::timeout timeouts{};
    timeouts.handshake_timeout = options.handshake_timeout;
    timeouts.idle_timeout = options.idle_timeout;
    timeouts.keep_alive_pings = options.keep_alive_pings;
    ws_.set_option(timeouts);
  }

 private:
  // The shared write side's hooks (frame_writer.hpp).
  [[nodiscard]] auto get_executor() noexcept { return ws_.get_executor(); }

  std::optional<std::size_t> write_now(std::span<const boost::asio::const_buffer> frames,
                                       boost::beast::error_code& ec) {
    return ws_.next_layer().try_write_frames(frames, ec);
  }

  template <class Handler>
  void write_later(std::span<const boost::asio::const_buffer> frames, Handler handler) {
    ws_.next_layer().async_write_frames(frames, std::move(handler));
  }

  /// Beast writes the close frame and waits for the peer's (its stream must know it sent one).
  void write_close_frame(close_code code) {
    this->mark_write_started();
    ws_.async_close(boost::beast::websocket::close_reason(static_cast<std::uint16_t>(code)),
                    [self = this->shared_from_this()](boost::beast::error_code) {
                      self->mark_write_ended();
                      self->mark_closed();
                    });
  }

  /// The socket under the WebSocket (and TLS, if any).
  auto& lowest_socket() {
    auto& lowest = boost::beast::get_lowest_layer(ws_);
    if constexpr (requires { lowest.socket().native_handle(); })
      return lowest.socket();
    else
      return lowest;
  }

  const connection_id id_;
  stream_type ws_;
};

using websocket_connection = basic_websocket_connection<>;

}  // namespace uniws::beast
