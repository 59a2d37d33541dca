// libFuzzer target: the example server's HTTP session (examples/golden_path/http_session.hpp,
// the real code, unchanged) fed any bytes a peer can send, the bytes of a WebSocket behind an
// upgrade included. Properties: no exception leaves the session, no crash, and the session ends
// within a bound once the peer has sent everything and shut its side (no hang); libFuzzer's
// -rss_limit_mb bounds the memory.
//
// The session takes a TCP socket, so the bytes go in over a loopback connection made in this
// process: one io_context runs the session and the peer, no thread and no port beyond it.
// "TOKEN" in an input stands for a valid token of user alice, so inputs reach the WebSocket.
#include "../../examples/golden_path/http_session.hpp"
#include "../../examples/golden_path/options.hpp"
#include "../../examples/golden_path/server_state.hpp"

#include <boost/asio.hpp>

#include <array>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

namespace {

namespace gp = golden_path;
namespace net = boost::asio;

gp::options fuzz_options() {
  gp::options o;
  o.agent_delay = std::chrono::milliseconds(0);  // runs started by an input end by themselves
  o.max_steps = 20;
  o.max_runs_per_user = 2;
  o.handshake_timeout = std::chrono::seconds(2);
  return o;
}

// Built once and never destroyed: the io_context keeps what earlier inputs left (runs that
// finish later, idle managers) and libFuzzer exits from anywhere.
struct harness {
  uniws::queue_budget queued{std::size_t{64} << 20};
  std::atomic<std::size_t> open_connections{0};
  net::io_context io;
  gp::server_state state{fuzz_options(), net::make_strand(io), queued, open_connections};
  gp::tcp::acceptor acceptor{io, gp::tcp::endpoint(net::ip::make_address("127.0.0.1"), 0)};
  const std::string token = state.tokens.issue("alice");
  // Made here, not by the first input that upgrades: the registry keeps its managers behind
  // tagged slot words that LeakSanitizer cannot follow, so libFuzzer's per-input leak check would
  // call a manager the registry holds a leak.
  const gp::manager_ref alice = state.factory.get_websocket_manager(uniws::basic_user_context("alice"));
};

harness& the_harness() {
  static harness* h = new harness;
  return *h;
}

std::string with_token(std::string_view in, const std::string& token) {
  std::string out;
  for (std::size_t at = 0;;) {
    const std::size_t hit = in.find("TOKEN", at);
    out.append(in.substr(at, hit - at));
    if (hit == std::string_view::npos) return out;
    out.append(token);
    at = hit + 5;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  harness& h = the_harness();
  const std::string input = with_token(std::string_view(reinterpret_cast<const char*>(data), size), h.token);

  gp::tcp::socket peer(h.io);
  // libFuzzer's timeout alarm (SIGALRM) may interrupt the blocking connect; the kernel goes on
  // connecting, so ask again until it says connected.
  boost::system::error_code ec;
  do peer.connect(h.acceptor.local_endpoint(), ec);
  while (ec == boost::asio::error::interrupted || ec == boost::asio::error::already_started);
  if (ec == boost::asio::error::already_connected) ec = {};
  if (ec) throw boost::system::system_error(ec, "connect");
  gp::socket_type server(h.io.get_executor());  // a connection lives on its loop (event_loops.hpp)
  h.acceptor.accept(server);

  bool session_done = false, peer_done = false;
  net::co_spawn(server.get_executor(),
                gp::http_session(h.state, std::move(server), gp::audience::everyone,
                                 gp::connection_slot(h.open_connections)),
                [&](std::exception_ptr e) {
                  if (e) {
                    try {
                      std::rethrow_exception(e);
                    } catch (const std::exception& x) {
                      std::fprintf(stderr, "an exception left the session: %s\n", x.what());
                    }
                    __builtin_trap();
                  }
                  session_done = true;
                });
  // The peer sends everything, shuts its side, and reads (and drops) what comes back until the end.
  std::array<char, 16 * 1024> sink{};
  std::function<void()> read_on = [&] {
    peer.async_read_some(net::buffer(sink), [&](boost::system::error_code ec, std::size_t) {
      if (ec) {
        peer_done = true;
        return;
      }
      read_on();
    });
  };
  net::async_write(peer, net::buffer(input), [&](boost::system::error_code, std::size_t) {
    boost::system::error_code ignored;
    peer.shutdown(gp::tcp::socket::shutdown_send, ignored);
  });
  read_on();

  // Generous: the server's own bounds (a 1 s lingering close, 2 s handshake timeout) end it sooner.
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!(session_done && peer_done)) {
    if (h.io.stopped()) h.io.restart();  // it stops whenever it runs out of work
    h.io.run_one_for(std::chrono::milliseconds(100));
    if (std::chrono::steady_clock::now() > give_up) {
      std::fprintf(stderr,
                   "the session did not end within 10 s of the peer's last byte (session %d, peer %d)\n",
                   session_done, peer_done);
      __builtin_trap();
    }
  }
  return 0;
}
