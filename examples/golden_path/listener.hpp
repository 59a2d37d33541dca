// listener.hpp - binds the port and accepts connections, each handed to an HTTP session on one
// of the event loops, in turn.
#pragma once

#include "event_loops.hpp"
#include "http_session.hpp"
#include "server_state.hpp"

#include <boost/asio.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <exception>
#include <memory>
#include <optional>
#include <string_view>
#include <vector>

namespace golden_path {

/// Opens, binds and listens; throws what Asio throws (address in use, bad address).
inline tcp::acceptor open_acceptor(net::io_context& io, const std::string& address, unsigned short port) {
  tcp::acceptor acceptor(io);
  const tcp::endpoint endpoint(net::ip::make_address(address), port);
  acceptor.open(endpoint.protocol());
  acceptor.set_option(net::socket_base::reuse_address(true));
  acceptor.bind(endpoint);
  acceptor.listen(net::socket_base::max_listen_connections);
  return acceptor;
}

// A descriptor kept in reserve: when accept fails for want of descriptors, it is given back for
// a moment so that one waiting connection can be taken off the queue and told 503, instead of
// the queue filling up with peers that hear nothing.
class spare_descriptor {
 public:
  spare_descriptor() { take(); }
  spare_descriptor(const spare_descriptor&) = delete;
  spare_descriptor& operator=(const spare_descriptor&) = delete;
  ~spare_descriptor() { give_back(); }
  void take() {
    if (fd_ < 0) fd_ = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  }
  void give_back() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

inline bool out_of_descriptors(const boost::system::error_code& ec) {
  return ec == net::error::no_descriptors || ec == boost::system::errc::too_many_files_open_in_system;
}

// Out of descriptors: refuse one waiting connection with the spare (503 in plain HTTP, a close
// with TLS, where there is no handshake to answer in), then the caller backs off.
inline void refuse_one(server_state& s, tcp::acceptor& acceptor, spare_descriptor& spare) {
  static constexpr std::string_view answer =
      "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\nContent-Length: 83\r\n"
      "Connection: close\r\n\r\n{\"error\":{\"code\":\"too_many_connections\",\"message\":\"out of "
      "descriptors; try again\"}}";
  spare.give_back();
  boost::system::error_code ec;
  acceptor.non_blocking(true, ec);
  tcp::socket peer(acceptor.get_executor());
  acceptor.accept(peer, ec);
  acceptor.non_blocking(false, ec);
  if (!ec) {
    s.stats.add<&server_stats::connections_refused_server_full>();
    peer.non_blocking(true, ec);
    if (!s.tls) peer.write_some(net::buffer(answer), ec);
    peer.close(ec);
  }
  spare.take();
}

inline net::awaitable<void> listen(server_state& s, tcp::acceptor& acceptor, event_loops& loops, audience a) {
  spare_descriptor spare;
  net::steady_timer backoff(acceptor.get_executor());
  // Connections over --max-connections being answered 503: bounded too, past it they are closed.
  static constexpr std::size_t max_refusing = 64;
  auto refusing = std::make_shared<std::atomic<std::size_t>>(0);
  for (;;) {
    auto [ec, socket] =
        co_await acceptor.async_accept(loops.next_for_connection(), net::as_tuple(net::use_awaitable));
    if (ec) {
      if (ec == net::error::operation_aborted || !acceptor.is_open()) co_return;
      s.stats.add<&server_stats::accept_failures>();
      // Out of descriptors the accept would fail again at once: a loop at 100 % CPU that
      // starves every open connection. Refuse one, then wait for connections to close.
      if (out_of_descriptors(ec)) refuse_one(s, acceptor, spare);
      backoff.expires_after(std::chrono::milliseconds(50));
      co_await backoff.async_wait(net::as_tuple(net::use_awaitable));
      continue;
    }
    // Events are small and latency matters: do not let Nagle hold one back for an ACK.
    beast::error_code ignored;
    socket.set_option(tcp::no_delay(true), ignored);
    std::optional<connection_slot> slot;
    if (s.open_connections.load() < s.opts.max_connections) {
      slot.emplace(s.open_connections);
    } else if (refusing->load() >= max_refusing) {
      s.stats.add<&server_stats::connections_refused_server_full>();
      socket.close(ignored);
      continue;
    } else {
      refusing->fetch_add(1);
    }
    const bool refused = !slot;
    auto executor = socket.get_executor();
    net::co_spawn(
        executor, http_session(s, std::move(socket), a, std::move(slot)),
        [&s, refusing, refused](std::exception_ptr e) {
          if (refused) refusing->fetch_sub(1);
          if (e) s.stats.add<&server_stats::session_errors>();  // that session is gone; the server goes on
        });
  }
}

}  // namespace golden_path
