// uniws::asio::websocket_connection (the lean connection: a bare socket, uniws's own framing)
// over real loopback sockets, against clients nobody here wrote (Boost.Beast's, and
// python3-websockets in asio_connection_python) and against raw bytes for what those clients
// never send: unmasked frames, messages over the bound, bytes right behind the upgrade, a peer
// that never answers a close. Runs under ThreadSanitizer and ASan + UBSan with the rest.
#include <uniws/asio/connection.hpp>
#include <uniws/asio/upgrade.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/websocket.hpp>

#include <catch2/catch.hpp>

#include <poll.h>

#include "jthread.hpp"
#include "read_message.hpp"

#include <array>
#include <atomic>
#include <cstdio>
#include <exception>
#include <chrono>
#include <future>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
namespace http = beast::http;
using tcp = net::ip::tcp;
using namespace std::chrono_literals;

// Echoes text, answers binary with "binary:<size>", closes on "close".
struct echo_session {
  std::atomic<int>* closes;
  template <class Connection>
  void on_message(Connection& c, std::string_view m, uniws::asio::message_kind kind) {
    if (m == "close") return c.close(uniws::close_code::normal);
    if (m == "throw") throw std::runtime_error("the session failed");
    if (kind == uniws::asio::message_kind::binary)
      c.try_send(uniws::message::copy_of("binary:" + std::to_string(m.size())));
    else
      c.try_send(uniws::message::copy_of(m));
  }
  template <class Connection>
  void on_close(Connection&) {
    closes->fetch_add(1);
  }
};
using connection = uniws::asio::websocket_connection<echo_session>;

// A server on one loop thread that upgrades the first connection to 127.0.0.1:port().
class server {
 public:
  explicit server(uniws::asio::connection_options options = {}) {
    acceptor_.async_accept([this, options](beast::error_code ec, connection::stream_type socket) {
      if (ec) return;
      auto buffer = std::make_shared<beast::flat_buffer>();
      auto req = std::make_shared<http::request<http::string_body>>();
      auto s = std::make_shared<connection::stream_type>(std::move(socket));
      http::async_read(*s, *buffer, *req, [this, options, buffer, req, s](beast::error_code e, std::size_t) {
        if (e) return;
        uniws::asio::upgrade_answer a = uniws::asio::answer_upgrade(*req, "test");
        // Not REQUIRE: Catch's assertions are the test thread's alone (ThreadSanitizer).
        if (!a.accepted)
          return started_.set_exception(std::make_exception_ptr(std::runtime_error(a.response)));
        conn_ = connection::create(1, std::move(*s), options, echo_session{&closes_});
        const auto early = buffer->data();
        conn_->start(std::move(a.response),
                     std::string(static_cast<const char*>(early.data()), early.size()));
        started_.set_value();
      });
    });
    // As a server's loop does: what a handler throws is counted, and the loop goes on.
    thread_ = uniws_test::jthread([this] {
      for (;;) {
        try {
          io_.run();
          return;
        } catch (const std::runtime_error&) {
          thrown_.fetch_add(1);
        }
      }
    });
  }
  server(const server&) = delete;
  server& operator=(const server&) = delete;
  ~server() {
    if (conn_) conn_->cut();
    work_.reset();
    net::post(io_, [this] { acceptor_.close(); });
    thread_ = {};
  }

  unsigned short port() const { return acceptor_.local_endpoint().port(); }
  connection& conn() {
    started_future_.get();  // rethrows a refused upgrade
    return *conn_;
  }
  int closes_so_far() const { return closes_.load(); }
  /// How many exceptions left the loop's run().
  int thrown() const { return thrown_.load(); }
  /// How many times the session heard on_close, once the loop has had 2 s to finish what is
  /// under way (an aborted wait completes after the handler that closed its socket).
  int closes() {
    for (int i = 0; i < 2000 && closes_.load() == 0; ++i) std::this_thread::sleep_for(1ms);
    on_loop([] {});
    return closes_.load();
  }
  /// Runs `f` on the loop and waits for it.
  template <class F>
  void on_loop(F f) {
    std::promise<void> done;
    net::post(io_, [&] {
      f();
      done.set_value();
    });
    done.get_future().wait();
  }

 private:
  net::io_context io_{1};
  net::executor_work_guard<net::io_context::executor_type> work_ = net::make_work_guard(io_);
  net::basic_socket_acceptor<tcp, net::io_context::executor_type> acceptor_{
      io_.get_executor(), tcp::endpoint(net::ip::make_address("127.0.0.1"), 0)};
  std::shared_ptr<connection> conn_;
  std::atomic<int> closes_{0};
  std::atomic<int> thrown_{0};
  std::promise<void> started_;
  std::shared_future<void> started_future_ = started_.get_future().share();
  uniws_test::jthread thread_;
};

// A Beast client, blocking.
struct beast_client {
  net::io_context io;
  websocket::stream<tcp::socket> ws{io};
  explicit beast_client(unsigned short port) {
    ws.next_layer().connect({net::ip::make_address("127.0.0.1"), port});
    ws.handshake("127.0.0.1", "/");
  }
  std::optional<std::string> read() { return uniws_test::read_message(ws); }
};

// A raw client: sends the upgrade and whatever bytes it likes.
struct raw_client {
  net::io_context io;
  tcp::socket socket{io};
  static constexpr std::string_view upgrade =
      "GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
  explicit raw_client(unsigned short port, std::string_view after_upgrade = {}) {
    socket.connect({net::ip::make_address("127.0.0.1"), port});
    net::write(socket, net::buffer(std::string(upgrade) + std::string(after_upgrade)));
    beast::flat_buffer b;
    http::response<http::empty_body> res;
    http::response_parser<http::empty_body> parser;
    parser.skip(true);
    http::read_header(socket, b, parser);
    REQUIRE(parser.get().result() == http::status::switching_protocols);
    REQUIRE(parser.get()[http::field::sec_websocket_accept] ==
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");  // RFC 6455 1.3
    pending.assign(static_cast<const char*>(b.data().data()), b.size());
  }
  void send(std::string_view bytes) { net::write(socket, net::buffer(bytes)); }
  std::string read_exactly(std::size_t n) {
    std::string got = pending.substr(0, n);
    pending.erase(0, got.size());
    const std::size_t have = got.size();
    got.resize(n);
    net::read(socket, net::buffer(got.data() + have, n - have));
    return got;
  }
  /// Everything the server sends until it closes the connection; if it is still open after 5 s,
  /// what came, then a mark that says so (so a check fails at once instead of hanging).
  std::string read_to_end() {
    std::string all = std::move(pending);
    pending.clear();
    std::array<char, 4096> chunk;
    const auto deadline = std::chrono::steady_clock::now() + 5s;
    for (;;) {
      const auto left =
          std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
      pollfd readable{.fd = socket.native_handle(), .events = POLLIN, .revents = 0};
      if (left.count() <= 0 || ::poll(&readable, 1, static_cast<int>(left.count())) == 0)
        return all + "[still open after 5 s]";
      beast::error_code ec;
      const std::size_t n = socket.read_some(net::buffer(chunk), ec);
      if (ec) return all;
      all.append(chunk.data(), n);
    }
  }
  std::string pending;
};

// A masked client frame (mask 0: the payload as it is, which RFC 6455 allows).
std::string client_frame(unsigned char first, std::string_view payload, bool masked = true) {
  std::string f(1, static_cast<char>(first));
  const unsigned char mask_bit = masked ? 0x80 : 0;
  if (payload.size() < 126) {
    f += static_cast<char>(mask_bit | payload.size());
  } else {
    f += static_cast<char>(mask_bit | 126);
    f += static_cast<char>(payload.size() >> 8);
    f += static_cast<char>(payload.size() & 0xFF);
  }
  if (masked) f.append(4, '\0');
  return f.append(payload);
}

// "m<i>" (appended: g++ 12 at -O2 warns falsely about "m" + std::to_string(i)).
std::string numbered(int i) {
  std::string m = "m";
  m += std::to_string(i);
  return m;
}

std::string close_frame_from_server(std::uint16_t code) {
  return std::string{'\x88', '\x02', static_cast<char>(code >> 8), static_cast<char>(code & 0xFF)};
}

}  // namespace

TEST_CASE("a Beast client: messages echo, pings are answered, its close is answered and heard once") {
  server s;
  beast_client c(s.port());
  c.ws.write(net::buffer(std::string("hello")));
  CHECK(c.read() == "hello");
  c.ws.binary(true);
  c.ws.write(net::buffer(std::string(1000, 'b')));
  CHECK(c.read() == "binary:1000");
  c.ws.binary(false);
  const std::string big(60000, 'x');  // in several reads on the server, under the 64 KiB bound
  c.ws.write(net::buffer(big));
  CHECK(c.read() == big);

  bool pong = false;
  c.ws.control_callback([&](websocket::frame_type kind, beast::string_view payload) {
    if (kind == websocket::frame_type::pong && payload == "p1") pong = true;
  });
  c.ws.ping("p1");
  c.ws.write(net::buffer(std::string("after ping")));
  CHECK(c.read() == "after ping");
  CHECK(pong);

  c.ws.close(websocket::close_code::going_away);  // Beast waits for the answer and the TCP close
  CHECK(s.conn().messages_written() == 4);
  s.on_loop([] {});
  CHECK(s.closes() == 1);
  CHECK_FALSE(s.conn().is_open());
}

TEST_CASE("a server close writes what is queued, then the close frame, then ends TCP") {
  server s;
  beast_client c(s.port());
  c.ws.write(net::buffer(std::string("warm up")));
  CHECK(c.read() == "warm up");
  s.on_loop([&] {
    for (int i = 0; i < 40; ++i) s.conn().try_send(uniws::message::copy_of(numbered(i)));
    s.conn().close(uniws::close_code::going_away);
  });
  for (int i = 0; i < 40; ++i) CHECK(c.read() == numbered(i));
  CHECK_FALSE(c.read());
  CHECK(c.ws.reason().code == websocket::close_code::going_away);
  s.on_loop([] {});
  CHECK(s.closes() == 1);
  CHECK(s.conn().discarded() == 0);
}

TEST_CASE("a session's close from inside on_message is a graceful close") {
  server s;
  beast_client c(s.port());
  c.ws.write(net::buffer(std::string("one")));
  c.ws.write(net::buffer(std::string("close")));
  CHECK(c.read() == "one");
  CHECK_FALSE(c.read());
  CHECK(c.ws.reason().code == websocket::close_code::normal);
}

TEST_CASE("bytes that came behind the upgrade request are the WebSocket's") {
  server s;
  raw_client c(s.port(), client_frame(0x81, "early") + client_frame(0x81, "close"));
  CHECK(c.read_exactly(11) == std::string("\x81\x05") + "early" + close_frame_from_server(1000));
  c.send(client_frame(0x88, std::string{'\x03', '\xE8'}));  // the answer ends the handshake
  CHECK(c.read_to_end().empty());
  s.on_loop([] {});
  CHECK(s.closes() == 1);
}

TEST_CASE("a fragmented message with a ping between its fragments") {
  server s;
  raw_client c(s.port());
  c.send(client_frame(0x01, "frag") + client_frame(0x89, "hi") + client_frame(0x80, "mented"));
  CHECK(c.read_exactly(16) == std::string("\x8A\x02hi\x81\x0A") + "fragmented");
  // Its close is answered with its code, and TCP ends.
  c.send(client_frame(0x88, std::string{'\x0F', '\xA0'}));
  CHECK(c.read_to_end() == close_frame_from_server(4000));
}

TEST_CASE("what is queued when the peer's close arrives is discarded and counted") {
  server s;
  raw_client c(s.port());
  // The echo of "one" is still corked when the close that came with it is read.
  c.send(client_frame(0x81, "one") + client_frame(0x88, ""));
  CHECK(c.read_to_end() == close_frame_from_server(1000));
  CHECK(s.closes() == 1);
  CHECK(s.conn().discarded() == 1);
  CHECK(s.conn().messages_written() == 0);
}

TEST_CASE("a session that throws: its connection is cut off and on_close heard, then run() throws") {
  server s;
  raw_client c(s.port());
  c.send(client_frame(0x81, "one"));
  CHECK(c.read_exactly(5) == std::string("\x81\x03") + "one");
  c.send(client_frame(0x81, "throw") + client_frame(0x81, "two"));
  // Bounded (closes() waits 2 s): with the connection left open, the read below would never end.
  REQUIRE(s.closes() == 1);
  CHECK(s.thrown() == 1);
  CHECK(c.read_to_end().empty());  // no close frame, and "two" was not read
  CHECK_FALSE(s.conn().is_open());
}

TEST_CASE("a peer that breaks the protocol gets the close code that says why, then TCP ends") {
  server s;
  SECTION("an unmasked frame: 1002") {
    raw_client c(s.port());
    c.send(client_frame(0x81, "no mask", false));
    CHECK(c.read_to_end() == close_frame_from_server(1002));
  }
  SECTION("text that is not UTF-8: 1007") {
    raw_client c(s.port());
    c.send(client_frame(0x81, "\xC3\x28"));
    CHECK(c.read_to_end() == close_frame_from_server(1007));
  }
  SECTION("a message over read_message_max: 1009, known from the frame's header") {
    raw_client c(s.port());
    // Binary, FIN, masked, the 64-bit length form: 65,537 bytes, one over the 64 KiB bound.
    c.send(std::string{'\x82', '\xFF', 0, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0});
    CHECK(c.read_to_end() == close_frame_from_server(1009));
  }
  s.on_loop([] {});
  CHECK(s.closes() == 1);
}

TEST_CASE("check_timeouts: a quiet peer is pinged, a silent one cut, a close not answered cut") {
  server s;
  raw_client c(s.port());
  const uniws::asio::connection_timeouts t{.idle = 10s, .closing = 2s, .keep_alive_pings = true};
  connection& conn = s.conn();
  const auto now = std::chrono::steady_clock::now();
  SECTION("quiet for half the idle timeout: one ping, not two") {
    CHECK(conn.check_timeouts(t, now + 3s) == connection::timeout_action::none);  // not yet quiet
    CHECK(conn.check_timeouts(t, now + 6s) == connection::timeout_action::pinged);
    CHECK(c.read_exactly(2) == std::string("\x89\x00", 2));
    // The ping is out: a later check in the same quiet spell sends none.
    CHECK(conn.check_timeouts(t, now + 7s) == connection::timeout_action::none);
    s.on_loop([] {});
    c.send(client_frame(0x81, "close"));
    CHECK(c.read_exactly(4) == close_frame_from_server(1000));  // nothing between: one ping
    c.send(client_frame(0x88, ""));
    CHECK(c.read_to_end().empty());
  }
  SECTION("silent for the idle timeout after a ping: cut off with no close frame") {
    conn.check_timeouts(t, now + 1s);
    CHECK(conn.check_timeouts(t, now + 6s) == connection::timeout_action::pinged);
    CHECK(c.read_exactly(2) == std::string("\x89\x00", 2));
    s.on_loop([] {});
    CHECK(s.closes_so_far() == 0);
    CHECK(conn.check_timeouts(t, now + 11s) == connection::timeout_action::cut_idle);
    CHECK(c.read_to_end().empty());  // no close frame
  }
  // A check came late (a busy loop) and the one before found the peer not yet quiet: it was never
  // pinged, so it had no chance to show it is alive. It is pinged, not cut.
  const auto late_check_pings = [&] {
    CHECK(conn.check_timeouts(t, now + 11s) == connection::timeout_action::pinged);
    CHECK(c.read_exactly(2) == std::string("\x89\x00", 2));
    s.on_loop([] {});
    CHECK(s.closes_so_far() == 0);
  };
  SECTION("a late check finds it silent past the idle timeout, never pinged: pinged; it answers, it stays") {
    late_check_pings();
    c.send(client_frame(0x8A, ""));  // the pong
    c.send(client_frame(0x81, "hi"));
    CHECK(c.read_exactly(4) == "\x81\x02hi");  // both read
    CHECK(conn.check_timeouts(t, std::chrono::steady_clock::now() + 1s) == connection::timeout_action::none);
    c.send(client_frame(0x81, "close"));
    CHECK(c.read_exactly(4) == close_frame_from_server(1000));
    c.send(client_frame(0x88, ""));
    CHECK(c.read_to_end().empty());
  }
  SECTION("a late check finds it silent past the idle timeout, never pinged: pinged; no answer, cut next") {
    late_check_pings();
    CHECK(conn.check_timeouts(t, now + 12s) == connection::timeout_action::cut_idle);
    CHECK(c.read_to_end().empty());
  }
  SECTION("our close frame not answered within the closing timeout: cut off") {
    s.on_loop([&] { conn.close(uniws::close_code::normal); });
    CHECK(c.read_exactly(4) == close_frame_from_server(1000));
    conn.check_timeouts(t, std::chrono::steady_clock::now() + 1s);
    s.on_loop([] {});
    s.on_loop([] {});
    std::this_thread::sleep_for(20ms);
    s.on_loop([] {});
    CHECK(s.closes_so_far() == 0);  // still waiting for the peer's close frame: not cut
    CHECK(conn.check_timeouts(t, std::chrono::steady_clock::now() + 3s) ==
          connection::timeout_action::cut_closing);
    CHECK(c.read_to_end().empty());
  }
  s.on_loop([] {});
  CHECK(s.closes() == 1);
}

TEST_CASE("the upgrade: refusals say why") {
  const auto answer = [](std::string_view text) {
    http::request_parser<http::string_body> p;
    beast::error_code ec;
    p.put(net::buffer(text.data(), text.size()), ec);
    REQUIRE_FALSE(ec);
    return uniws::asio::answer_upgrade(p.get(), "test");
  };
  CHECK(answer(raw_client::upgrade).accepted);
  const auto old = answer(
      "GET / HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n");
  CHECK_FALSE(old.accepted);
  CHECK(old.response.starts_with("HTTP/1.1 426"));
  CHECK(old.response.find("Sec-WebSocket-Version: 13\r\n") != std::string::npos);
  const auto no_key = answer(
      "GET / HTTP/1.1\r\nHost: x\r\nConnection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n"
      "Sec-WebSocket-Version: 13\r\n\r\n");
  CHECK_FALSE(no_key.accepted);
  CHECK(no_key.response.starts_with("HTTP/1.1 400"));
  CHECK(no_key.response.ends_with("Sec-WebSocket-Key is not 16 bytes in base64"));
}

TEST_CASE("python3-websockets: text, binary, a fragmented message, a ping, a clean close") {
  server s;
  const std::string script = R"(
import asyncio, sys, websockets
async def main():
    async with websockets.connect("ws://127.0.0.1:" + sys.argv[1], ping_interval=None, max_size=None) as ws:
        await ws.send("hello")
        assert await ws.recv() == "hello"
        await ws.send(b"\x00" * 3000)
        assert await ws.recv() == "binary:3000"
        await ws.send(iter(["frag", "mented ", "\u00e9t\u00e9"]))
        assert await ws.recv() == "fragmented \u00e9t\u00e9"
        await asyncio.wait_for(await ws.ping(b"p"), 5)
        big = "x" * 65536
        await ws.send(big)
        assert await ws.recv() == big
    assert ws.close_code == 1000, ws.close_code
    print("ok")
asyncio.run(main())
)";
  const std::string cmd = "/usr/bin/python3 -c '" + script + "' " + std::to_string(s.port()) + " 2>&1";
  std::string out;
  if (FILE* p = ::popen(cmd.c_str(), "r")) {
    std::array<char, 256> line;
    while (std::fgets(line.data(), line.size(), p)) out += line.data();
    ::pclose(p);
  }
  CHECK(out == "ok\n");
  CHECK(s.closes() == 1);
}
