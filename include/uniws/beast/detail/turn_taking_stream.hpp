// uniws/beast/detail/turn_taking_stream.hpp - the layer under the connection's WebSocket stream
// through which two writers take turns, one whole write at a time.
//
// The connection frames its messages itself and writes a batch of them with one gathered write
// (one system call for what Beast would write with one each). Beast still writes the handshake's
// response and its control frames (pongs, keep-alive pings, the close frame) on its own. Both go
// through here: a write is written whole before it completes, and starts only when the write
// before it has completed, so frames from the two writers never interleave, even when a slow
// peer makes a write take several system calls. Each writer has at most one write out at a time
// (Beast serialises its own), so at most one waits. Beast writes each frame with one call here
// as long as it is under Asio's 64 KiB per call: its control frames (125 bytes at most) and the
// handshake's response are; the connection sends its messages itself.
//
// Everything runs on the stream's executor (a strand, or a loop run by one thread). A write's
// completion keeps the owner (the connection that holds this stream) alive: Beast's keep-alive
// ping can still be completing when the last other reference to the connection goes.
#pragma once

#include <boost/asio/associated_executor.hpp>
#include <boost/asio/async_result.hpp>
#include <boost/asio/bind_executor.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/role.hpp>
#include <boost/beast/websocket/error.hpp>
#include <boost/beast/websocket/teardown.hpp>

#include <cstddef>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

namespace uniws::beast::detail {

template <class NextLayer>
class turn_taking_stream {
 public:
  using executor_type = typename NextLayer::executor_type;
  using next_layer_type = NextLayer;

  explicit turn_taking_stream(NextLayer next) : next_(std::move(next)) {}
  turn_taking_stream(turn_taking_stream&&) = default;

  /// Whose life a pending write's completion extends (set once the owner is in a shared_ptr).
  void set_owner(std::weak_ptr<void> owner) noexcept { owner_ = std::move(owner); }

  [[nodiscard]] executor_type get_executor() noexcept { return next_.get_executor(); }
  [[nodiscard]] NextLayer& next_layer() noexcept { return next_; }
  [[nodiscard]] const NextLayer& next_layer() const noexcept { return next_; }

  template <class MutableBuffers, class Token>
  auto async_read_some(const MutableBuffers& buffers, Token&& token) {
    return next_.async_read_some(buffers, std::forward<Token>(token));
  }

  /// Beast's writes: all of `buffers`, after the write in progress if there is one. Beast writes
  /// a frame with one call; once it has written a close frame, nothing else may follow it.
  template <class ConstBuffers, class Token>
  auto async_write_some(const ConstBuffers& buffers, Token&& token) {
    return boost::asio::async_initiate<Token, void(boost::beast::error_code, std::size_t)>(
        [this](auto handler, const ConstBuffers& b) {
          if (const auto first = boost::asio::buffer_sequence_begin(b);
              first != boost::asio::buffer_sequence_end(b)) {
            const boost::asio::const_buffer head = *first;
            if (head.size() > 0 && *static_cast<const unsigned char*>(head.data()) == close_frame)
              close_written_ = true;
          }
          start(b, std::move(handler));
        },
        token, buffers);
  }

  /// The connection's writes: whole frames, as async_write_some; refused with
  /// websocket::error::closed once Beast has written its close frame.
  template <class ConstBuffers, class Token>
  auto async_write_frames(const ConstBuffers& buffers, Token&& token) {
    return boost::asio::async_initiate<Token, void(boost::beast::error_code, std::size_t)>(
        [this](auto handler, const ConstBuffers& b) {
          if (close_written_) {
            auto executor = boost::asio::get_associated_executor(handler, get_executor());
            boost::asio::post(boost::asio::bind_executor(executor, [handler = std::move(handler)]() mutable {
              std::move(handler)(boost::beast::websocket::error::closed, 0);
            }));
            return;
          }
          start(b, std::move(handler));
        },
        token, buffers);
  }

  /// The connection's write when it can be made at once, on the stream's executor: what the layer
  /// below takes now without waiting, if no write is out and Beast has not written its close
  /// frame. nullopt when it cannot be tried here (a write is out, the stream is closed, or the
  /// layer below cannot write without waiting): use async_write_frames. Otherwise the bytes
  /// written, all or some; `ec` says why not all (would_block: the socket's buffer is full).
  /// The layer below writes without waiting if it is a socket (put in non-blocking mode here)
  /// or has `std::optional<std::size_t> try_write_some(buffers, ec)` (nullopt: not now).
  template <class ConstBuffers>
  std::optional<std::size_t> try_write_frames(const ConstBuffers& buffers, boost::beast::error_code& ec) {
    if (writing_ || close_written_) return std::nullopt;
    if constexpr (requires { next_.try_write_some(buffers, ec); }) {
      return next_.try_write_some(buffers, ec);
    } else if constexpr (requires {
                           next_.native_handle();
                           next_.non_blocking(true, ec);
                           next_.write_some(buffers, ec);
                         }) {
      if (!next_.non_blocking()) {
        next_.non_blocking(true, ec);
        if (ec) return std::nullopt;
      }
      return next_.write_some(buffers, ec);
    } else {
      return std::nullopt;
    }
  }

  // Beast's closing handshake ends the layer below: by then its close frame, the last write, has
  // completed.
  friend void teardown(boost::beast::role_type role, turn_taking_stream& s, boost::beast::error_code& ec) {
    using boost::beast::websocket::teardown;
    teardown(role, s.next_, ec);
  }
  template <class Handler>
  friend void async_teardown(boost::beast::role_type role, turn_taking_stream& s, Handler&& handler) {
    using boost::beast::websocket::async_teardown;
    async_teardown(role, s.next_, std::forward<Handler>(handler));
  }

 private:
  // A close frame's first byte: FIN and opcode 8. The handshake's response starts with ASCII.
  static constexpr unsigned char close_frame = 0x88;

  template <class ConstBuffers, class Handler>
  void start(const ConstBuffers& b, Handler handler) {
    if (!writing_) return write_now(b, std::move(handler));
    // `b` may not outlive this call (Asio's write passes a temporary view): keep the list.
    waiting_ = std::make_unique<waiting_write<Handler>>(
        std::vector<boost::asio::const_buffer>(boost::asio::buffer_sequence_begin(b),
                                               boost::asio::buffer_sequence_end(b)),
        std::move(handler));
  }

  struct waiting {
    virtual ~waiting() = default;
    virtual void start(turn_taking_stream& s) = 0;
  };
  template <class Handler>
  struct waiting_write final : waiting {
    waiting_write(std::vector<boost::asio::const_buffer> b, Handler h)
        : buffers(std::move(b)), handler(std::move(h)) {}
    void start(turn_taking_stream& s) override { s.write_now(buffers, std::move(handler)); }
    std::vector<boost::asio::const_buffer> buffers;
    Handler handler;
  };

  // Asio's write keeps a copy of `buffers` (the list, not the bytes).
  template <class ConstBuffers, class Handler>
  void write_now(const ConstBuffers& buffers, Handler handler) {
    writing_ = true;
    auto executor = boost::asio::get_associated_executor(handler, get_executor());
    boost::asio::async_write(
        next_, buffers,
        boost::asio::bind_executor(executor, [this, keep = owner_.lock(), handler = std::move(handler)](
                                                 boost::beast::error_code ec, std::size_t n) mutable {
          writing_ = false;
          if (auto next = std::move(waiting_)) next->start(*this);
          std::move(handler)(ec, n);
        }));
  }

  NextLayer next_;
  std::weak_ptr<void> owner_;
  std::unique_ptr<waiting> waiting_;  // the other writer's write, while one is out
  bool writing_ = false;
  bool close_written_ = false;
};

}  // namespace uniws::beast::detail
