// uniws::beast::websocket_connection over a real loopback socket, with try_send and close
// called from several threads while the write loop runs on a strand of a two-thread
// io_context; and the same adapter over a bare socket on a loop run by one thread (the golden
// path's way), where sends made on the loop wait for the end of its pass. Runs under
// ThreadSanitizer (tsan preset) and ASan + UBSan (asan preset).
//
// The invariant every test checks: each message try_send accepted is written, dropped by
// the queue's bound, or discarded because the connection closed first, and each of those
// is counted. Nothing is lost silently.
#include <uniws/beast/connection.hpp>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>

#include <catch2/catch.hpp>

#include <sys/socket.h>

#include "jthread.hpp"
#include "read_message.hpp"

#include <atomic>
#include <chrono>
#include <functional>
#include <future>
#include <string>
#include <thread>
#include <vector>

namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace websocket = beast::websocket;
using tcp = net::ip::tcp;
using connection = uniws::beast::websocket_connection;
using namespace std::chrono_literals;

// Beast's tcp_stream on a strand of a two-thread io_context: every send is posted to it.
struct on_strands {
  using connection = uniws::beast::websocket_connection;
  using accepted = tcp::socket;
  static constexpr int threads = 2;
  static auto executor(net::io_context& io) { return net::make_strand(io); }
  static auto next_layer(auto socket) { return beast::tcp_stream(std::move(socket)); }
};

// A bare socket whose executor is its loop's, one thread: sends made on the loop are corked.
struct on_one_loop {
  using socket = net::basic_stream_socket<tcp, net::io_context::executor_type>;
  using connection = uniws::beast::basic_websocket_connection<socket>;
  using accepted = socket;
  static constexpr int threads = 1;
  static auto executor(net::io_context& io) { return io.get_executor(); }
  static auto next_layer(socket s) { return s; }
};

template <class Stream>
auto& lowest_socket(Stream& s) {
  auto& lowest = beast::get_lowest_layer(s);
  if constexpr (requires { lowest.socket(); })
    return lowest.socket();
  else
    return lowest;
}

// A server-side connection and a blocking client stream, joined over 127.0.0.1.
template <class Way>
class basic_loopback {
 public:
  using connection = typename Way::connection;

  explicit basic_loopback(uniws::beast::connection_options options) {
    tcp::acceptor acceptor(io_, tcp::endpoint(net::ip::make_address("127.0.0.1"), 0));
    for (int i = 0; i < Way::threads; ++i) threads_.emplace_back([this] { io_.run(); });

    std::promise<beast::error_code> accepted;
    acceptor.async_accept(Way::executor(io_), [&](beast::error_code ec, typename Way::accepted socket) {
      if (ec) return accepted.set_value(ec);
      server_ = connection::create(1, Way::next_layer(std::move(socket)), options);
      server_->stream().async_accept([&](beast::error_code e) { accepted.set_value(e); });
    });
    beast::get_lowest_layer(client_).connect(acceptor.local_endpoint());
    client_.handshake("127.0.0.1", "/");
    REQUIRE_FALSE(accepted.get_future().get());
  }

  basic_loopback(const basic_loopback&) = delete;
  basic_loopback& operator=(const basic_loopback&) = delete;

  ~basic_loopback() {
    beast::error_code ignored;
    beast::get_lowest_layer(client_).socket().close(ignored);
    if (server_)
      net::post(server_->stream().get_executor(), [c = server_] {
        beast::error_code e;
        c->mark_closed();
        lowest_socket(c->stream()).close(e);
      });
    server_.reset();
    work_.reset();
    threads_.clear();  // joins once the last handler has run
  }

  connection& server() { return *server_; }
  std::shared_ptr<connection> server_ptr() { return server_; }
  websocket::stream<beast::tcp_stream>& client() { return client_; }

  /// Reads one message; empty on close or error (the close code is then in reason()).
  std::optional<std::string> read() { return uniws_test::read_message(client_); }

  /// Runs `f` on the connection's executor and waits for it.
  template <class F>
  void on_executor(F f) {
    std::promise<void> done;
    net::post(server_->stream().get_executor(), [&] {
      f();
      done.set_value();
    });
    done.get_future().wait();
  }

 private:
  net::io_context io_{Way::threads};
  net::executor_work_guard<net::io_context::executor_type> work_ = net::make_work_guard(io_);
  net::io_context client_io_;
  websocket::stream<beast::tcp_stream> client_{client_io_};
  std::shared_ptr<connection> server_;
  std::vector<uniws_test::jthread> threads_;
};

using loopback = basic_loopback<on_strands>;
using loop_link = basic_loopback<on_one_loop>;

struct tally {
  std::atomic<std::uint64_t> accepted{0}, refused{0};
  void count(uniws::send_result r) {
    if (r == uniws::send_result::queued || r == uniws::send_result::dropped)
      accepted.fetch_add(1);
    else
      refused.fetch_add(1);
  }
};

std::string payload(int sender, int n) { return std::to_string(sender) + ":" + std::to_string(n); }

// Waits (bounded) until `c` has settled: no message in flight, so the accounting is final.
template <class Connection>
void wait_settled(const Connection& c, const tally& t) {
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (c.messages_written() + c.dropped() + c.discarded() != t.accepted.load() &&
         std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(1ms);
}

// Reads `total` messages of `senders` senders ("sender:n"); answers how many came out of their
// sender's order.
template <class Link>
int read_out_of_order(Link& link, int senders, int total) {
  std::vector<int> next(static_cast<std::size_t>(senders), 0);
  int out_of_order = 0;
  for (int received = 0; received < total; ++received) {
    auto m = link.read();
    REQUIRE(m);
    const auto colon = m->find(':');
    const auto s = static_cast<std::size_t>(std::stoi(m->substr(0, colon)));
    const int n = std::stoi(m->substr(colon + 1));
    if (n != next[s]) ++out_of_order;
    next[s] = n + 1;
  }
  return out_of_order;
}

// Waits (bounded) until `c` has counted `n` messages written.
template <class Connection>
void wait_written(const Connection& c, std::uint64_t n) {
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (c.messages_written() < n && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(1ms);
}

// Waits (bounded) until `c` has bytes a stall check would look at.
template <class Connection>
bool becomes_unsettled(const Connection& c) {
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (!c.has_unsettled_writes() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(1ms);
  return c.has_unsettled_writes();
}

}  // namespace

TEST_CASE("try_send from four threads: every message arrives once, each sender's in order") {
  loopback link({.queue = {.max_messages = 1 << 20, .max_bytes = std::size_t{1} << 30}});
  constexpr int senders = 4, per_sender = 5000;
  tally t;
  {
    std::vector<uniws_test::jthread> threads;
    for (int s = 0; s < senders; ++s)
      threads.emplace_back([&, s] {
        for (int n = 0; n < per_sender; ++n)
          t.count(link.server().try_send(uniws::message::copy_of(payload(s, n))));
      });

    CHECK(read_out_of_order(link, senders, senders * per_sender) == 0);
  }
  CHECK(t.accepted == senders * per_sender);
  CHECK(t.refused == 0);

  link.server().close(uniws::close_code::normal);
  CHECK_FALSE(link.read());
  CHECK(link.client().reason().code == websocket::close_code::normal);
  CHECK(link.server().try_send(uniws::message::copy_of("late")) == uniws::send_result::closed);
  wait_settled(link.server(), t);
  CHECK(link.server().messages_written() == t.accepted);
  CHECK(link.server().dropped() == 0);
  CHECK(link.server().discarded() == 0);
}

TEST_CASE("close races try_send: what was accepted before the close arrives first, the rest is refused") {
  loopback link({.queue = {.max_messages = 1 << 20, .max_bytes = std::size_t{1} << 30}});
  tally t;
  std::atomic<bool> go{false};
  std::vector<uniws_test::jthread> threads;
  for (int s = 0; s < 3; ++s)
    threads.emplace_back([&, s] {
      while (!go.load()) std::this_thread::yield();
      for (int n = 0; n < 20000; ++n) t.count(link.server().try_send(uniws::message::copy_of(payload(s, n))));
    });
  threads.emplace_back([&] {
    while (!go.load()) std::this_thread::yield();
    std::this_thread::sleep_for(2ms);
    link.server().close(uniws::close_code::going_away);
  });
  go = true;

  std::uint64_t received = 0;
  while (link.read()) ++received;
  threads.clear();

  CHECK(link.client().reason().code == websocket::close_code::going_away);
  CHECK(t.accepted + t.refused == 60000);
  wait_settled(link.server(), t);
  // A graceful close flushes: every accepted message was written before the close frame.
  CHECK(received == t.accepted);
  CHECK(link.server().messages_written() == t.accepted);
  CHECK(link.server().discarded() == 0);
}

TEST_CASE("the peer vanishing mid-write: writes fail, the rest is counted as discarded, no crash") {
  loopback link({.queue = {.max_messages = 256, .max_bytes = std::size_t{64} << 20}});
  const std::string big(64 * 1024, 'x');
  tally t;
  std::atomic<bool> stop{false};
  std::vector<uniws_test::jthread> threads;
  for (int s = 0; s < 2; ++s)
    threads.emplace_back([&] {
      const auto deadline = std::chrono::steady_clock::now() + 20s;
      while (!stop.load() && std::chrono::steady_clock::now() < deadline) {
        const auto r = link.server().try_send(uniws::message::copy_of(big));
        t.count(r);
        if (r == uniws::send_result::closed) return;
      }
    });

  for (int i = 0; i < 3; ++i) REQUIRE(link.read());
  // An abortive close (RST): the server's next writes fail with a reset, not a close frame.
  auto& socket = beast::get_lowest_layer(link.client()).socket();
  socket.set_option(net::socket_base::linger(true, 0));
  socket.close();

  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (link.server().is_open() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(1ms);
  CHECK_FALSE(link.server().is_open());
  stop = true;
  threads.clear();

  CHECK(link.server().try_send(uniws::message::copy_of(big)) == uniws::send_result::closed);
  wait_settled(link.server(), t);
  const std::uint64_t counted =
      link.server().messages_written() + link.server().dropped() + link.server().discarded();
  CHECK(counted == t.accepted);
  CHECK(link.server().discarded() > 0);
}

TEST_CASE(
    "delivery metrics: each stamped message's latency is recorded once it is written, replies are not") {
  uniws::delivery_metrics metrics;
  loopback link({.queue = {.max_messages = 1024, .max_bytes = std::size_t{1} << 20}, .metrics = &metrics});
  const auto emitted = uniws::message::clock::now() - 2ms;  // at least 2 ms before it is written
  for (int n = 0; n < 100; ++n) link.server().try_send(uniws::message::copy_of(payload(0, n), emitted));
  for (int n = 0; n < 10; ++n) link.server().try_send(uniws::message::copy_of("reply"));  // not an event
  for (int n = 0; n < 110; ++n) REQUIRE(link.read());
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (link.server().messages_written() < 110 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(1ms);

  const uniws::histogram::snapshot latency = metrics.delivery_seconds.read();
  CHECK(latency.count == 100);
  CHECK(latency.cumulative.front() == 0);  // the first bucket is 50 us: each waited 2 ms or more
  CHECK(latency.sum >= 100 * 0.002);
  CHECK(metrics.queue_bytes.read().count == link.server().writes());  // one observation per write
}

TEST_CASE("what is queued goes out in batches: up to 16 messages per write, in order") {
  loopback link({.queue = {.max_messages = 1024, .max_bytes = std::size_t{1} << 20}});
  // The strand is held busy until all 160 are queued, so the write loop finds them all.
  std::promise<void> queued;
  net::post(link.server().stream().get_executor(), [done = queued.get_future().share()] { done.wait(); });
  for (int n = 0; n < 160; ++n)
    REQUIRE(link.server().try_send(uniws::message::copy_of(payload(0, n))) == uniws::send_result::queued);
  queued.set_value();
  for (int n = 0; n < 160; ++n) REQUIRE(link.read() == payload(0, n));
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (link.server().messages_written() < 160 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(1ms);
  CHECK(link.server().messages_written() == 160);
  CHECK(link.server().writes() == 10);
}

TEST_CASE(
    "Beast's pongs take turns with the connection's writes: a peer that pings while a batch is half written "
    "gets every frame whole") {
  loopback link({.queue = {.max_messages = 1024, .max_bytes = std::size_t{64} << 20}});
  // The server reads, so Beast answers pings, each with a pong written through the same socket.
  auto server = link.server_ptr();
  auto buffer = std::make_shared<beast::flat_buffer>();
  auto read_loop = std::make_shared<std::function<void()>>();
  *read_loop = [server, buffer, weak_loop = std::weak_ptr<std::function<void()>>(read_loop)] {
    server->stream().async_read(*buffer, [buffer, weak_loop](beast::error_code ec, std::size_t) {
      buffer->clear();
      if (auto loop = weak_loop.lock(); loop && !ec) (*loop)();
    });
  };
  net::post(server->stream().get_executor(), [read_loop] { (*read_loop)(); });

  // Messages far bigger than the socket buffers: writes stay half done while the pings arrive.
  constexpr int messages = 64;
  constexpr std::size_t size = 100 * 1024;
  for (int n = 0; n < messages; ++n)
    REQUIRE(link.server().try_send(uniws::message::copy_of(
                std::string(size, static_cast<char>('a' + n % 26)))) == uniws::send_result::queued);
  std::this_thread::sleep_for(50ms);
  int pongs = 0;
  link.client().control_callback([&](websocket::frame_type kind, beast::string_view) {
    if (kind == websocket::frame_type::pong) ++pongs;
  });
  constexpr int pings = 20;
  for (int n = 0; n < messages; ++n) {
    if (n < pings) link.client().ping({});
    const auto got = link.read();
    REQUIRE(got);
    REQUIRE(got->size() == size);
    REQUIRE(*got == std::string(size, static_cast<char>('a' + n % 26)));
  }
  // A pong waiting for its turn goes out when the connection's writer next lets go of the
  // socket; the writer may take it again first (a write at once), so the pongs can trail a few
  // messages. Each message read gives them their turn: all must come, whole, within 100.
  for (int flush = 0; pongs < pings && flush < 100; ++flush) {
    REQUIRE(link.server().try_send(uniws::message::copy_of("flush")) == uniws::send_result::queued);
    REQUIRE(link.read() == "flush");
  }
  CHECK(pongs == pings);
}

TEST_CASE("on its loop, what one pass sends a connection goes out with one gathered write, in order") {
  loop_link link({.queue = {.max_messages = 1024, .max_bytes = std::size_t{1} << 20}});
  link.on_executor([&] {
    for (int n = 0; n < 12; ++n)
      REQUIRE(link.server().try_send(uniws::message::copy_of(payload(0, n))) == uniws::send_result::queued);
  });
  for (int n = 0; n < 12; ++n) REQUIRE(link.read() == payload(0, n));
  wait_written(link.server(), 12);  // the counts follow the system call the client read from
  CHECK(link.server().messages_written() == 12);
  CHECK(link.server().writes() == 1);
}

TEST_CASE("on its loop, a lone send is written when its pass ends, before the next handler runs") {
  loop_link link({.queue = {.max_messages = 1024, .max_bytes = std::size_t{1} << 20}});
  std::promise<std::uint64_t> written_then;
  link.on_executor([&] {
    REQUIRE(link.server().try_send(uniws::message::copy_of("lone")) == uniws::send_result::queued);
    CHECK(link.server().messages_written() == 0);  // corked for the rest of the pass
    net::post(link.server().stream().get_executor(),
              [&] { written_then.set_value(link.server().messages_written()); });
  });
  CHECK(written_then.get_future().get() == 1);
  CHECK(link.read() == "lone");
}

TEST_CASE("on its loop, a pass that sends more than the socket takes: the rest follows, every frame whole") {
  loop_link link({.queue = {.max_messages = 1024, .max_bytes = std::size_t{64} << 20}});
  constexpr int messages = 64;
  constexpr std::size_t size = 100 * 1024;  // far more than the socket's buffer holds
  const auto text = [](int n) { return std::string(size, static_cast<char>('a' + n % 26)); };
  link.on_executor([&] {
    // A small send buffer, and the client not reading yet: the first write is cut short.
    lowest_socket(link.server().stream()).set_option(net::socket_base::send_buffer_size(16 * 1024));
    for (int n = 0; n < messages; ++n)
      REQUIRE(link.server().try_send(uniws::message::copy_of(text(n))) == uniws::send_result::queued);
  });
  std::this_thread::sleep_for(50ms);
  // A stream the bug corrupts may never end a frame: past 20 s the client's socket is shut
  // down, so the read fails instead of waiting for ever.
  std::promise<void> read_all;
  uniws_test::jthread watchdog(
      [done = read_all.get_future(), fd = lowest_socket(link.client()).native_handle()] {
        if (done.wait_for(20s) == std::future_status::timeout) ::shutdown(fd, SHUT_RDWR);
      });
  for (int n = 0; n < messages; ++n) {
    const auto got = link.read();
    REQUIRE(got);
    REQUIRE(*got == text(n));
  }
  read_all.set_value();
  wait_written(link.server(), messages);
  CHECK(link.server().messages_written() == messages);
}

TEST_CASE("stall checks: a connection whose peer took all it wrote is left alone until it writes again") {
  loop_link link({.queue = {.max_messages = 1024, .max_bytes = std::size_t{1} << 20}});
  int cut = 0;
  // One check, then a handler queued behind it: the check has run when on_executor returns.
  const auto check = [&] {
    link.server().cut_off_if_stalled(10s, [&] { ++cut; });
    link.on_executor([] {});
  };
  CHECK_FALSE(link.server().has_unsettled_writes());  // nothing written yet
  REQUIRE(link.server().try_send(uniws::message::copy_of("event")) == uniws::send_result::queued);
  REQUIRE(link.read() == "event");
  CHECK(becomes_unsettled(link.server()));  // set just after the write the client read from
  // The client's kernel acknowledges what it received (at once, or after a delayed ACK).
  const auto deadline = std::chrono::steady_clock::now() + 5s;
  while (link.server().has_unsettled_writes() && std::chrono::steady_clock::now() < deadline) {
    check();
    std::this_thread::sleep_for(1ms);
  }
  CHECK_FALSE(link.server().has_unsettled_writes());
  REQUIRE(link.server().try_send(uniws::message::copy_of("again")) == uniws::send_result::queued);
  REQUIRE(link.read() == "again");
  CHECK(becomes_unsettled(link.server()));
  CHECK(cut == 0);
}

// A link whose client reads little (a 16 KiB receive buffer: the kernel's autotuning would
// otherwise take megabytes over a while), the server's send buffer as given, and the stall check
// run on the connection's loop and waited for.
struct stall_probe {
  explicit stall_probe(int server_send_buffer) {
    lowest_socket(link.client()).set_option(net::socket_base::receive_buffer_size(16 * 1024));
    link.on_executor([&] {
      lowest_socket(link.server().stream())
          .set_option(net::socket_base::send_buffer_size(server_send_buffer));
    });
  }
  void check(std::chrono::milliseconds timeout) {
    link.server().cut_off_if_stalled(timeout, [this] { ++cut; });
    link.on_executor([] {});
  }
  loop_link link{{.queue = {.max_messages = 1024, .max_bytes = std::size_t{64} << 20}}};
  std::atomic<int> cut{0};
};

TEST_CASE("stall checks: a peer that stops taking what is sent is cut off after the timeout, not before") {
  // The client reads one message and then nothing: far more than the socket buffers hold waits.
  stall_probe probe(16 * 1024);
  auto& link = probe.link;
  REQUIRE(link.server().try_send(uniws::message::copy_of("first")) == uniws::send_result::queued);
  REQUIRE(link.read() == "first");
  for (int n = 0; n < 16; ++n)
    REQUIRE(link.server().try_send(uniws::message::copy_of(std::string(100 * 1024, 'x'))) ==
            uniws::send_result::queued);
  std::this_thread::sleep_for(200ms);  // the buffers fill
  probe.check(200ms);                  // sees the backlog: progress from here
  probe.check(200ms);
  CHECK(probe.cut == 0);
  std::this_thread::sleep_for(300ms);
  probe.check(200ms);
  REQUIRE(probe.cut == 1);  // (else the reads below would wait for ever)
  beast::flat_buffer rest;
  beast::error_code ec;
  while (!ec) link.client().read(rest, ec), rest.clear();  // the cut connection ends with an error
  CHECK(ec);
}

TEST_CASE("stall checks: a peer that stops reading is cut off when all that waits for it is in the kernel") {
  // A large send buffer on the server: the socket takes the whole message at once, so no write
  // of the connection's is pending; only the kernel knows that the peer has not taken it.
  stall_probe probe(4 << 20);
  auto& link = probe.link;
  REQUIRE(link.server().try_send(uniws::message::copy_of("first")) == uniws::send_result::queued);
  REQUIRE(link.read() == "first");
  REQUIRE(link.server().try_send(uniws::message::copy_of(std::string(512 * 1024, 'x'))) ==
          uniws::send_result::queued);
  wait_written(link.server(), 2);      // handed to the socket whole: nothing left to write
  std::this_thread::sleep_for(200ms);  // the client's window closes
  probe.check(200ms);                  // sees bytes waiting in the kernel: progress from here
  std::this_thread::sleep_for(300ms);
  probe.check(200ms);
  REQUIRE(probe.cut == 1);
}

TEST_CASE(
    "on its loop, sends from the loop and from two other threads: every message once, each sender's in "
    "order") {
  loop_link link({.queue = {.max_messages = 1 << 20, .max_bytes = std::size_t{1} << 30}});
  static constexpr int per_sender = 3000, per_pass = 10;
  tally t;
  {
    // Sender 0 sends from the loop, ten per pass; senders 1 and 2 from threads of their own.
    std::function<void(int)> pass = [&](int from) {
      for (int n = from; n < std::min(per_sender, from + per_pass); ++n)
        t.count(link.server().try_send(uniws::message::copy_of(payload(0, n))));
      if (from + per_pass < per_sender)
        net::post(link.server().stream().get_executor(), [&pass, from] { pass(from + per_pass); });
    };
    net::post(link.server().stream().get_executor(), [&pass] { pass(0); });
    std::vector<uniws_test::jthread> threads;
    for (int s = 1; s <= 2; ++s)
      threads.emplace_back([&, s] {
        for (int n = 0; n < per_sender; ++n)
          t.count(link.server().try_send(uniws::message::copy_of(payload(s, n))));
      });
    CHECK(read_out_of_order(link, 3, 3 * per_sender) == 0);
  }
  CHECK(t.accepted == 3 * per_sender);
  wait_settled(link.server(), t);
  CHECK(link.server().messages_written() == t.accepted);
}
