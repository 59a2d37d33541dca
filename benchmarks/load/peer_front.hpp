// peer_front.hpp - what the benchmark's C++ peers share and do not compete on: the command line,
// /login and the /ws upgrade with a Bearer token as docs/protocol.md has them (the example
// server's own auth.hpp), the accept loop and main's io_context. Each peer supplies what it is
// measured on: what it does with an upgraded socket.
#pragma once

#include "../../examples/golden_path/auth.hpp"

#include <boost/asio.hpp>
#include <boost/beast.hpp>
#include <boost/json.hpp>

#include <sys/resource.h>

#include <charconv>
#include <chrono>
#include <functional>
#include <iostream>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace peer {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace websocket = beast::websocket;
namespace json = boost::json;
using tcp = net::ip::tcp;

struct options {
  std::string address = "127.0.0.1", users_file;
  unsigned short port = 0;
  unsigned threads = 1;
  std::chrono::milliseconds agent_delay{50};
  bool agent_burst = false;  // with agent_delay 0: a run emitted without yielding
  bool index_by_user = false;
};

inline unsigned long number(std::string_view text) {
  unsigned long v = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size())
    throw std::invalid_argument("bad number: " + std::string(text));
  return v;
}

inline options parse_options(int argc, char** argv) {
  options o;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string_view flag = argv[i], value = argv[i + 1];
    if (flag == "--port")
      o.port = static_cast<unsigned short>(number(value));
    else if (flag == "--address")
      o.address = value;
    else if (flag == "--threads")
      o.threads = static_cast<unsigned>(number(value));
    else if (flag == "--users")
      o.users_file = value;
    else if (flag == "--agent-delay-ms")
      o.agent_delay = std::chrono::milliseconds(number(value));
    else if (flag == "--agent-burst")
      o.agent_burst = number(value) != 0;
    else if (flag == "--index-by-user")
      o.index_by_user = number(value) != 0;
    else
      throw std::invalid_argument("unknown option " + std::string(flag));
  }
  return o;
}

/// Login and tokens, as the example server has them.
struct front {
  golden_path::user_directory users;
  golden_path::token_authority tokens{golden_path::jwt::key::random_hs256(), {}, std::chrono::hours(1)};
};

inline http::response<http::string_body> answer(const http::request<http::string_body>& req,
                                                http::status status, std::string body) {
  http::response<http::string_body> res{status, req.version()};
  res.set(http::field::content_type, "application/json");
  res.keep_alive(false);
  res.body() = std::move(body);
  res.prepare_payload();
  return res;
}

/// One HTTP request: an upgrade to /ws with a valid Bearer token goes to
/// `upgrade(socket, user, request)` (a coroutine, awaited here); /login answers a token; /stats
/// answers `stats()`.
template <class Upgrade, class Stats>
net::awaitable<void> http_session(front& f, tcp::socket socket, Upgrade upgrade, Stats stats) {
  using namespace std::chrono_literals;
  beast::tcp_stream stream(std::move(socket));
  beast::flat_buffer buffer;
  http::request<http::string_body> req;
  stream.expires_after(10s);
  auto [ec, n] = co_await http::async_read(stream, buffer, req, net::as_tuple(net::use_awaitable));
  if (ec) co_return;
  const std::string_view target = req.target();
  if (target.substr(0, 3) == "/ws" && websocket::is_upgrade(req)) {
    std::optional<std::string> user;
    if (const auto it = req.find(http::field::authorization);
        it != req.end() && it->value().substr(0, 7) == "Bearer ")
      if (auto v = f.tokens.verify(it->value().substr(7));
          std::holds_alternative<golden_path::jwt::verified>(v))
        user = std::get<golden_path::jwt::verified>(std::move(v)).subject;
    if (user) {
      stream.expires_never();
      co_await upgrade(stream.release_socket(), std::move(*user), std::move(req));
      co_return;
    }
  }
  http::response<http::string_body> res;
  if (target == "/login") {
    const auto login = golden_path::parse_login(req.body());
    res = login && f.users.check(login->user, login->password)
              ? answer(req, http::status::ok,
                       json::serialize(
                           json::object{{"token", f.tokens.issue(login->user)}, {"user", login->user}}))
              : answer(req, http::status::unauthorized, R"({"error":{"code":"invalid_credentials"}})");
  } else if (target == "/stats") {
    res = answer(req, http::status::ok, stats());
  } else {
    res = answer(req, http::status::unauthorized, R"({"error":{"code":"unauthorized"}})");
  }
  co_await http::async_write(stream, res, net::as_tuple(net::use_awaitable));
  stream.socket().shutdown(tcp::socket::shutdown_send, ec);
}

/// Listens on o.address:o.port, prints "listening on http://ADDRESS:PORT" (what run_e2e.py
/// waits for), and runs `session(socket)` for each accepted socket on a strand of its own, on
/// o.threads threads, until SIGINT or SIGTERM.
template <class Session>
int serve(const options& o, Session session) {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
  }
  net::io_context io(static_cast<int>(o.threads));
  tcp::acceptor acceptor(io, tcp::endpoint(net::ip::make_address(o.address), o.port));
  net::signal_set signals(io, SIGINT, SIGTERM);
  signals.async_wait([&](beast::error_code, int) { io.stop(); });
  net::co_spawn(
      io,
      [&]() -> net::awaitable<void> {
        for (;;) {
          auto [ec, socket] =
              co_await acceptor.async_accept(net::make_strand(io), net::as_tuple(net::use_awaitable));
          if (ec) {
            if (!acceptor.is_open()) co_return;
            continue;
          }
          socket.set_option(tcp::no_delay(true), ec);  // as the uniws server does: a fair comparison
          auto executor = socket.get_executor();
          net::co_spawn(executor, session(std::move(socket)), net::detached);
        }
      },
      net::detached);
  std::cout << "listening on http://" << o.address << ":" << acceptor.local_endpoint().port() << std::endl;
  std::vector<std::thread> pool;
  for (unsigned i = 1; i < o.threads; ++i) pool.emplace_back([&io] { io.run(); });
  io.run();
  for (auto& t : pool) t.join();
  return 0;
}

}  // namespace peer
