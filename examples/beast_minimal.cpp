// uniws-beast-minimal: uniws wired to Boost.Beast's WebSocket stream, and nothing else.
//
//   uniws-beast-minimal [--port N]        (0 or none: any free port; prints "listening on ...")
//   ws://127.0.0.1:N/?user=alice&thread=t1
//
// Each upgrade joins its user's manager (one per user, from the factory) and the thread named in
// the query. Each text message the client sends starts an agent run on that thread: the five
// events reach every connection of that user that joined the thread, in order. One thread runs
// the io_context; uniws itself starts none. For the production pieces (tokens, TLS, resume,
// limits, metrics, Redis) see examples/golden_path/, the reference server.
#include <uniws/uniws.hpp>
#include <uniws/beast/awaitable.hpp>
#include <uniws/beast/connection.hpp>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <string_view>

namespace net = boost::asio;
namespace http = boost::beast::http;
using tcp = net::ip::tcp;
using connection = uniws::beast::websocket_connection;
using factory_type = uniws::manager_factory<connection>;
using manager_ref = factory_type::manager_ref_type;

namespace {

// The value of `name` in the request target's query ("/?user=alice&thread=t1"), or "".
std::string query_value(std::string_view target, std::string_view name) {
  const auto q = target.find('?');
  if (q == std::string_view::npos) return {};
  for (std::string_view rest = target.substr(q + 1); !rest.empty();) {
    const auto amp = rest.find('&');
    const std::string_view pair = rest.substr(0, amp);
    if (pair.size() > name.size() && pair.starts_with(name) && pair[name.size()] == '=')
      return std::string(pair.substr(name.size() + 1));
    rest = amp == std::string_view::npos ? std::string_view{} : rest.substr(amp + 1);
  }
  return {};
}

// A pretend agent: the five events, with a pause where a real one would wait for its model.
// Parameters by value: a coroutine's body runs after its caller's temporaries are gone.
net::awaitable<void> agent_run(manager_ref mgr, std::string thread, std::string run_id, std::string prompt) {
  net::steady_timer pause(co_await net::this_coro::executor);
  auto wait = [&pause]() {
    pause.expires_after(std::chrono::milliseconds(20));
    return pause.async_wait(net::use_awaitable);
  };
  auto run = mgr.start_run(thread, run_id);  // agent_started
  co_await wait();
  run.thinking(uniws::json_text::string("reading: " + prompt));  // agent_thinking
  co_await wait();
  auto tool = std::move(run).execute_tool("search");  // tool_executing
  co_await wait();
  auto after = std::move(tool).finish(uniws::json_text::number(42));  // tool_completed
  std::move(after).complete("the answer is 42");                      // agent_completed
}

net::awaitable<void> session(factory_type& factory, tcp::socket socket, std::uint64_t id) {
  // The upgrade request: read with Beast's parser into a bounded buffer.
  boost::beast::flat_buffer buffer(16 * 1024);
  http::request<http::empty_body> req;
  auto [read_ec, n] = co_await http::async_read(socket, buffer, req, net::as_tuple(net::use_awaitable));
  if (read_ec || !boost::beast::websocket::is_upgrade(req)) co_return;

  // >>> Real authentication goes here: verify a token (a JWT from the query or a cookie) and
  // take the user id from it. Trusting a query parameter, as this example does, lets anyone be
  // anyone. examples/golden_path/auth.hpp verifies JWTs with OpenSSL.
  const std::string user = query_value(req.target(), "user");
  const std::string thread = query_value(req.target(), "thread");
  if (user.empty() || thread.empty()) {
    http::response<http::string_body> res(http::status::unauthorized, req.version());
    res.body() = "ws://host:port/?user=ID&thread=ID\n";
    res.prepare_payload();
    co_await http::async_write(socket, res, net::as_tuple(net::use_awaitable));
    co_return;
  }

  auto conn = connection::create(id, boost::beast::tcp_stream(std::move(socket)));
  auto& ws = conn->stream();
  if (auto [ec] = co_await ws.async_accept(req, net::as_tuple(net::use_awaitable)); ec) co_return;

  // One manager per user; the factory awaits the service probe (no blocking on this thread).
  manager_ref mgr =
      co_await uniws::beast::await_task(factory.get_websocket_manager_async(uniws::basic_user_context(user)));
  if (!mgr->add_connection(conn)) {  // the user is at manager_options::max_connections
    conn->close(uniws::close_code::try_again_later);
    co_return;
  }
  if (!mgr->join_thread(conn->id(), thread)) {  // answers {"type":"error",...}; says why
    conn->close(uniws::close_code::policy_violation);
    mgr->remove_connection(conn->id());
    co_return;
  }
  std::printf("open %s #%llu on %s\n", user.c_str(), static_cast<unsigned long long>(id), thread.c_str());

  // The read loop: each text message starts a run. It ends when the peer closes or goes away.
  boost::beast::flat_buffer message;
  for (int runs = 0;; message.clear()) {
    auto [ec, bytes] = co_await ws.async_read(message, net::as_tuple(net::use_awaitable));
    if (ec) break;
    net::co_spawn(ws.get_executor(),
                  agent_run(mgr, thread, "r-" + std::to_string(id) + "-" + std::to_string(++runs),
                            boost::beast::buffers_to_string(message.data())),
                  net::detached);
  }

  // On close: nothing more can be written, and the manager lets the connection go (a user's
  // manager itself goes once no connection or run holds it).
  conn->mark_closed();
  mgr->remove_connection(conn->id());
  std::printf("closed %s #%llu (%zu left)\n", user.c_str(), static_cast<unsigned long long>(id),
              mgr->connection_count());
}

net::awaitable<void> listen(factory_type& factory, tcp::acceptor acceptor) {
  for (std::uint64_t next_id = 1;; ++next_id) {
    auto [ec, socket] = co_await acceptor.async_accept(net::as_tuple(net::use_awaitable));
    if (ec) co_return;
    net::co_spawn(acceptor.get_executor(), session(factory, std::move(socket), next_id), net::detached);
  }
}

}  // namespace

int main(int argc, char** argv) {
  unsigned short port = 0;
  if (argc == 3 && std::string_view(argv[1]) == "--port")
    port = static_cast<unsigned short>(std::atoi(argv[2]));
  else if (argc != 1)
    return std::fprintf(stderr, "usage: %s [--port N]\n", argv[0]), 2;

  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // a line at a time, also into a pipe
  net::io_context ioc;
  factory_type factory;  // owns the registry of managers: no global state
  tcp::acceptor acceptor(ioc, {net::ip::make_address("127.0.0.1"), port});
  std::printf("listening on ws://127.0.0.1:%u/\n", acceptor.local_endpoint().port());
  net::co_spawn(ioc, listen(factory, std::move(acceptor)), net::detached);
  net::signal_set stop(ioc, SIGINT, SIGTERM);
  stop.async_wait([&ioc](auto, int) { ioc.stop(); });
  ioc.run();
}
