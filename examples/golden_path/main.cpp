// uniws-golden-path: the example server of docs/protocol.md, wired from a file per role.
//
// Log in over HTTP, open a WebSocket with the token, run an agent, receive its five events.
// One uniws::manager_factory (server_state.hpp) holds a manager per user; each WebSocket is a
// uniws::asio connection (connection.hpp) added to its user's manager (websocket_session.hpp); the
// demo agent emits through a uniws::agent_run, so its events always follow the grammar.
#include "event_loops.hpp"
#include "listener.hpp"
#include "options.hpp"
#include "server_state.hpp"
#include "shutdown.hpp"
#include "sweepers.hpp"

#include <boost/asio.hpp>

#include <sys/resource.h>

#include <atomic>
#include <cstddef>
#include <exception>
#include <iostream>
#include <variant>
#include <memory>
#include <string_view>

namespace {

// Each connection is a descriptor: a server holding many needs more than the usual soft limit.
void raise_open_file_limit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
  }
}

// A handler that throws leaves run(): the session it belonged to is gone with it, and the
// loop may be run again. Counted and logged; every other connection goes on.
void run_loop(boost::asio::io_context& io, golden_path::server_state& s) {
  for (;;) {
    try {
      io.run();
      return;
    } catch (const std::exception& e) {
      s.stats.add<&golden_path::server_stats::session_errors>();
      std::cerr << "uniws-golden-path: a session failed: " << e.what() << "\n";
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  namespace gp = golden_path;
  namespace net = boost::asio;
  auto parsed = gp::parse_options(argc, argv);
  if (const auto* answer = std::get_if<gp::command_line_answer>(&parsed)) {
    (answer->status == 0 ? std::cout : std::cerr) << answer->text;
    return answer->status;
  }
  const gp::options opts = std::get<gp::options>(std::move(parsed));
  raise_open_file_limit();

  // The loops outlive the server state: sockets die before their executor does; and what
  // connections count themselves in (the queues' budget, the open connections) outlives both.
  uniws::queue_budget queued(opts.max_queued_bytes);
  std::atomic<std::size_t> open_connections{0};
  gp::event_loops loops(opts.threads);
  net::io_context& io = loops.first();
  std::unique_ptr<gp::server_state> state;
  std::optional<gp::tcp::acceptor> acceptor, admin_acceptor;
  try {
    state = std::make_unique<gp::server_state>(opts, net::make_strand(io), queued, open_connections);
  } catch (const std::exception& e) {
    std::cerr << "uniws-golden-path: " << e.what() << "\n";
    return 2;
  }
  try {
    acceptor.emplace(gp::open_acceptor(io, opts.address, opts.port));
    if (opts.admin_port) admin_acceptor.emplace(gp::open_acceptor(io, opts.admin_address, *opts.admin_port));
  } catch (const std::exception& e) {
    std::cerr << "uniws-golden-path: cannot listen: " << e.what() << "\n";
    return 1;
  }

  auto sweeper = gp::idle_sweeper(io, *state);
  gp::connection_sweeper connections(io, *state);
  // The listeners stay open through the drain: a new connection is answered 503, not refused.
  gp::graceful_shutdown shutdown(loops, *state, [&] {
    sweeper.cancel();
    connections.cancel();
  });
  // Without an admin port, one listener serves everyone; with one, operators' routes move there.
  net::co_spawn(
      io,
      gp::listen(*state, *acceptor, loops, admin_acceptor ? gp::audience::clients : gp::audience::everyone),
      net::detached);
  if (admin_acceptor)
    net::co_spawn(io, gp::listen(*state, *admin_acceptor, loops, gp::audience::operators), net::detached);

  // Announced only now that SIGTERM is handled: a script may signal as soon as it reads this.
  const auto bound = acceptor->local_endpoint();
  const char* scheme = opts.tls_cert ? "https://" : "http://";
  std::cout << "listening on " << scheme << bound.address().to_string() << ":" << bound.port() << std::endl;
  if (admin_acceptor) {
    const auto admin = admin_acceptor->local_endpoint();
    std::cout << "admin on " << scheme << admin.address().to_string() << ":" << admin.port() << std::endl;
  }

  loops.run([&](net::io_context& loop) { run_loop(loop, *state); });
  // A connection whose peer never answered the drain's close is still in its user's manager, and
  // holds that manager (its session's manager_ref): taken out, or neither is ever freed.
  state->factory.for_each_manager([](std::string_view, auto& mgr) {
    mgr.for_each_connection([&mgr](gp::connection& c) { mgr.remove_connection(c.id()); });
  });
  // The managers (and the connections they hold) go before the loops; the factory
  // reclaims what they retired as it is destroyed.
  state.reset();
  return 0;
}
