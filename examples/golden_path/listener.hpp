// listener.hpp - binds the port and accepts connections, each handed to an HTTP session on a
// strand from a fixed pool.
#pragma once

#include "http_session.hpp"
#include "server_state.hpp"

#include <boost/asio.hpp>

#include <cstddef>
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

inline net::awaitable<void> listen(server_state& s, tcp::acceptor& acceptor, net::io_context& io, audience a) {
  // Connections take their strand from a fixed pool, as io_context::strand does: a strand of
  // its own would be another block per idle connection, and sharing one only orders handlers
  // that could have run in parallel. (A strand of the acceptor's any_io_executor would not fit
  // any_io_executor's inline storage: every copy of it, one per timer and work guard, was a
  // heap block, ~1 KB per idle connection.)
  std::vector<strand> strands;
  for (int i = 0; i < 193; ++i) strands.push_back(net::make_strand(io));
  for (std::size_t next = 0;; ++next) {
    auto [ec, socket] = co_await acceptor.async_accept(strands[next % strands.size()], net::as_tuple(net::use_awaitable));
    if (ec) {
      if (ec == net::error::operation_aborted || !acceptor.is_open()) co_return;
      continue;  // e.g. too many open files: keep serving the others
    }
    // Events are small and latency matters: do not let Nagle hold one back for an ACK.
    beast::error_code ignored;
    socket.set_option(tcp::no_delay(true), ignored);
    auto executor = socket.get_executor();
    net::co_spawn(executor, http_session(s, std::move(socket), a), net::detached);
  }
}

}  // namespace golden_path
