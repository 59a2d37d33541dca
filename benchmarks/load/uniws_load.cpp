// uniws-load: drives a server that speaks docs/protocol.md (uniws-golden-path, or the
// chat-multi-style baseline) with K users x C connections from one thread, and reports
// deliveries/s and run latency (run_agent sent -> agent_completed received on each of the
// user's connections) as text and as one JSON line.
//
//   uniws-load --port P [--second-port P2] [--users K] [--connections C] [--seconds D] [--warmup S]
//              [--mode agents|broadcast|idle|stalled] [--rate R] [--steps N] [--pad BYTES]
//              [--first-user U] [--bind ADDRESS]
//
//   agents     each user runs agents closed-loop: the next run starts when every one of its
//              connections has the last one's agent_completed
//   broadcast  open loop: R runs/s in all, spread over the users, whatever the server does
//   idle       log in, connect, join, then hold the connections for D seconds (the caller
//              reads the server's RSS); prints "ready N" when all are open
//   stalled    C connections of one user that never read, plus one that runs one agent of
//              --steps thoughts of --pad bytes: the server's memory with stalled readers (the
//              caller reads its peak RSS)
//
// Users are u{U}..u{U+K-1} (U: --first-user, 0 by default) with password pw-<i> (the servers'
// --users file); several drivers hold disjoint users that way, each connecting from a loopback
// address of its own (--bind 127.0.0.2) to have a range of ephemeral ports of its own. With --second-port,
// each user's odd-numbered connections go to a second node of a cluster (same token secret,
// same broker): runs are sent on connection 0, so latency is reported separately for the
// connections on the sender's node and on the other one.
#include "../../examples/golden_path/async_client.hpp"

#include <sys/resource.h>

#include <algorithm>
#include <charconv>
#include <deque>
#include <iostream>
#include <map>
#include <optional>
#include <stdexcept>
#include <vector>

namespace {

using namespace uniws_client;
using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

struct options {
  std::string address = "127.0.0.1";
  unsigned short port = 0;
  unsigned short second_port = 0;  // another node of a cluster: odd connections go there
  std::size_t users = 100, connections = 10;
  std::chrono::seconds duration{10}, warmup{2};
  std::string mode = "agents";
  double rate = 0;  // runs per second in all (broadcast)
  int steps = 8;
  std::size_t pad = 0;
  std::size_t first_user = 0;
  std::optional<net::ip::address> bind;  // the local address of the WebSocket connections
};

// What is wrong with the command line: main prints it with the usage and exits 2.
struct usage_error : std::invalid_argument {
  using std::invalid_argument::invalid_argument;
};

[[noreturn]] void usage(const std::string& problem) { throw usage_error(problem); }

double number(std::string_view flag, std::string_view text) {
  double v = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || v < 0)
    usage(std::string(flag) + " expects a number");
  return v;
}

options parse(int argc, char** argv) {
  options o;
  for (int i = 1; i < argc; ++i) {
    const std::string_view flag = argv[i];
    if (i + 1 >= argc) usage(std::string(flag) + " needs a value");
    const std::string_view v = argv[++i];
    if (flag == "--address")
      o.address = v;
    else if (flag == "--port")
      o.port = static_cast<unsigned short>(number(flag, v));
    else if (flag == "--second-port")
      o.second_port = static_cast<unsigned short>(number(flag, v));
    else if (flag == "--users")
      o.users = static_cast<std::size_t>(number(flag, v));
    else if (flag == "--connections")
      o.connections = static_cast<std::size_t>(number(flag, v));
    else if (flag == "--seconds")
      o.duration = std::chrono::seconds(static_cast<long>(number(flag, v)));
    else if (flag == "--warmup")
      o.warmup = std::chrono::seconds(static_cast<long>(number(flag, v)));
    else if (flag == "--mode")
      o.mode = v;
    else if (flag == "--rate")
      o.rate = number(flag, v);
    else if (flag == "--steps")
      o.steps = static_cast<int>(number(flag, v));
    else if (flag == "--pad")
      o.pad = static_cast<std::size_t>(number(flag, v));
    else if (flag == "--first-user")
      o.first_user = static_cast<std::size_t>(number(flag, v));
    else if (flag == "--bind") {
      boost::system::error_code ec;
      o.bind = net::ip::make_address(std::string(v), ec);
      if (ec) usage("--bind expects an IP address");
    } else
      usage("unknown option " + std::string(flag));
  }
  if (o.port == 0) usage("--port is required");
  if (o.users == 0 || o.connections == 0) usage("--users and --connections must be at least 1");
  if (o.mode != "agents" && o.mode != "broadcast" && o.mode != "idle" && o.mode != "stalled")
    usage("--mode expects agents, broadcast, idle or stalled");
  if (o.mode == "broadcast" && o.rate <= 0) usage("--mode broadcast needs --rate R (runs per second)");
  return o;
}

struct user_state {
  std::map<std::uint64_t, std::pair<clock_type::time_point, std::size_t>>
      in_flight;  // run -> (sent, pending)
  std::uint64_t sent = 0, completed = 0;
  std::unique_ptr<net::steady_timer> wake;
};

struct connection {
  std::size_t user = 0;
  bool remote = false;  // on the second node
  std::unique_ptr<ws_stream> ws;
};

class load {
 public:
  explicit load(options o)
      : o_(std::move(o)),
        server_(net::ip::make_address(o_.address), o_.port),
        second_(net::ip::make_address(o_.address), o_.second_port ? o_.second_port : o_.port) {}

  net::awaitable<void> run() {
    auto ex = co_await net::this_coro::executor;
    co_await connect_all(o_.mode == "stalled" ? 1 : o_.users,
                         o_.mode == "stalled" ? o_.connections + 1 : o_.connections);
    std::cout << "ready " << conns_.size() << std::endl;
    if (o_.mode == "idle") {
      net::steady_timer hold(ex, o_.duration);
      co_await hold.async_wait(net::use_awaitable);
      co_return;
    }
    // Readers for every connection, except the stalled ones, which never read.
    const std::size_t readers = o_.mode == "stalled" ? 1 : conns_.size();
    for (std::size_t i = 0; i < readers; ++i) net::co_spawn(ex, reader(i), net::detached);

    start_ = clock_type::now();
    measure_from_ = start_ + o_.warmup;
    end_ = measure_from_ + o_.duration;
    std::string why;
    const std::size_t driver_users = o_.mode == "stalled" ? 1 : o_.users;
    const std::size_t failed = co_await run_all(
        driver_users, [&](std::size_t u) { return driver(u); }, &why);
    if (failed) throw std::runtime_error("a driver failed: " + why);
    report();
    for (auto& c : conns_) beast::get_lowest_layer(*c.ws).close();
  }

 private:
  net::awaitable<void> connect_all(std::size_t user_count, std::size_t per_user) {
    std::vector<std::string> tokens(user_count);
    std::size_t next = 0;
    std::string why;
    std::size_t failed = co_await run_all(
        std::min<std::size_t>(32, user_count),
        [&](std::size_t) -> net::awaitable<void> {
          while (next < user_count) {
            const std::size_t u = next++;
            const std::string n = std::to_string(o_.first_user + u);
            tokens[u] = co_await login(server_, "u" + n, "pw-" + n);
          }
        },
        &why);
    if (failed) throw std::runtime_error("login failed: " + why);

    users_.resize(user_count);
    auto ex = co_await net::this_coro::executor;
    for (auto& u : users_)
      u.wake = std::make_unique<net::steady_timer>(ex, net::steady_timer::time_point::max());
    conns_.resize(user_count * per_user);
    per_user_ = per_user;
    next = 0;
    failed = co_await run_all(
        64,
        [&](std::size_t) -> net::awaitable<void> {
          while (next < conns_.size()) {
            const std::size_t i = next++;
            conns_[i].user = i / per_user;
            conns_[i].remote = (i % per_user) % 2 == 1 && o_.second_port != 0;
            conns_[i].ws =
                co_await open_websocket(conns_[i].remote ? second_ : server_, tokens[i / per_user], o_.bind);
            co_await send_json(*conns_[i].ws, join("load"));
            co_await send_json(*conns_[i].ws, ping());
            for (;;) {  // joined before anything is sent (uniws answers the join first: §R)
              auto pong = co_await read_json(*conns_[i].ws);
              if (!pong) throw std::runtime_error("no pong");
              if (pong->at("type").as_string() == "pong") break;
            }
          }
        },
        &why);
    if (failed) throw std::runtime_error("opening connections failed: " + why);
  }

  // Counts frames; on agent_completed, finds the run by the marker in its response.
  net::awaitable<void> reader(std::size_t i) {
    connection& c = conns_[i];
    beast::flat_buffer buffer;
    static constexpr std::string_view completed = R"({"type":"agent_completed")";
    static constexpr std::string_view joined = R"({"type":"joined")";  // an answer, not a delivery
    static constexpr std::string_view said = "You said: ";
    for (;;) {
      auto [ec, n] = co_await c.ws->async_read(buffer, net::as_tuple(net::use_awaitable));
      if (ec) co_return;
      const auto now = clock_type::now();
      const std::string_view frame(static_cast<const char*>(buffer.data().data()), buffer.size());
      if (now >= measure_from_ && now < end_ && frame.substr(0, joined.size()) != joined) {
        ++deliveries_;
        bytes_ += n;
      }
      if (frame.substr(0, completed.size()) == completed) {
        const auto at = frame.find(said);
        std::uint64_t run = 0;
        if (at != std::string_view::npos) {
          const char* first = frame.data() + at + said.size();
          const auto dash =
              std::string_view(first, static_cast<std::size_t>(frame.data() + frame.size() - first))
                  .find('-');
          std::from_chars(first + dash + 1, frame.data() + frame.size(), run);
        }
        user_state& u = users_[c.user];
        if (const auto it = u.in_flight.find(run); it != u.in_flight.end()) {
          if (it->second.first >= measure_from_ && now < end_)
            (c.remote ? remote_latencies_us_ : latencies_us_)
                .push_back(static_cast<std::uint32_t>(
                    std::chrono::duration_cast<std::chrono::microseconds>(now - it->second.first).count()));
          if (--it->second.second == 0) {
            u.in_flight.erase(it);
            ++u.completed;
            if (now >= measure_from_ && now < end_) ++runs_completed_;
            u.wake->cancel();
          }
        }
      }
      buffer.consume(buffer.size());
    }
  }

  net::awaitable<void> driver(std::size_t u) {
    auto ex = co_await net::this_coro::executor;
    user_state& user = users_[u];
    ws_stream& sender = *conns_[u * per_user_].ws;
    const std::size_t receivers = o_.mode == "stalled" ? 1 : per_user_;
    net::steady_timer tick(ex);
    const auto period = o_.mode == "broadcast"
                            ? std::chrono::duration_cast<clock_type::duration>(
                                  std::chrono::duration<double>(static_cast<double>(o_.users) / o_.rate))
                            : clock_type::duration::zero();
    auto next_send = start_ + period * static_cast<long>(u) / static_cast<long>(o_.users);  // staggered
    while (clock_type::now() < end_) {
      if (o_.mode == "broadcast") {
        tick.expires_at(next_send);
        co_await tick.async_wait(net::use_awaitable);
        next_send += period;
      }
      const std::uint64_t k = ++user.sent;
      user.in_flight[k] = {clock_type::now(), receivers};
      co_await send_json(sender,
                         run_agent("load", std::to_string(u) + "-" + std::to_string(k), o_.steps, o_.pad));
      if (o_.mode != "broadcast") {  // closed loop: wait for this run everywhere
        while (user.completed < k && clock_type::now() < end_ + 10s) {
          user.wake->expires_at(end_ + 10s);
          co_await user.wake->async_wait(net::as_tuple(net::use_awaitable));
        }
      }
      if (o_.mode == "stalled") co_return;  // one run: --steps messages, no more
    }
  }

  void report() {
    std::sort(latencies_us_.begin(), latencies_us_.end());
    std::sort(remote_latencies_us_.begin(), remote_latencies_us_.end());
    auto percentile = [](const std::vector<std::uint32_t>& v, double p) -> double {
      if (v.empty()) return 0;
      const auto i = static_cast<std::size_t>(p * static_cast<double>(v.size() - 1));
      return v[i] / 1000.0;
    };
    auto pct = [&](double p) { return percentile(latencies_us_, p); };
    auto remote_pct = [&](double p) { return percentile(remote_latencies_us_, p); };
    const double seconds = std::chrono::duration<double>(o_.duration).count();
    const double deliveries_per_s = static_cast<double>(deliveries_) / seconds;
    std::uint64_t sent = 0;
    for (const auto& u : users_) sent += u.sent;
    std::cout << "mode " << o_.mode << ", " << users_.size() << " users x " << per_user_ << " connections, "
              << seconds << " s measured\n"
              << "  deliveries/s   " << deliveries_per_s << "\n"
              << "  MB/s           " << static_cast<double>(bytes_) / seconds / 1e6 << "\n"
              << "  runs/s         " << static_cast<double>(runs_completed_) / seconds << "\n"
              << "  latency ms     p50 " << pct(0.5) << "  p99 " << pct(0.99) << "  p99.9 " << pct(0.999)
              << "  max " << pct(1.0) << "  (" << latencies_us_.size() << " samples)\n";
    if (o_.second_port)
      std::cout << "  other node ms  p50 " << remote_pct(0.5) << "  p99 " << remote_pct(0.99) << "  p99.9 "
                << remote_pct(0.999) << "  max " << remote_pct(1.0) << "  (" << remote_latencies_us_.size()
                << " samples)\n";
    std::cout << json::serialize(json::object{{"load", o_.mode},
                                              {"users", users_.size()},
                                              {"connections", conns_.size()},
                                              {"steps", o_.steps},
                                              {"pad", o_.pad},
                                              {"seconds", seconds},
                                              {"runs_sent", sent},
                                              {"deliveries_per_s", deliveries_per_s},
                                              {"mb_per_s", static_cast<double>(bytes_) / seconds / 1e6},
                                              {"runs_per_s", static_cast<double>(runs_completed_) / seconds},
                                              {"p50_ms", pct(0.5)},
                                              {"p99_ms", pct(0.99)},
                                              {"p999_ms", pct(0.999)},
                                              {"max_ms", pct(1.0)},
                                              {"samples", latencies_us_.size()},
                                              {"remote_p50_ms", remote_pct(0.5)},
                                              {"remote_p99_ms", remote_pct(0.99)},
                                              {"remote_p999_ms", remote_pct(0.999)},
                                              {"remote_samples", remote_latencies_us_.size()}})
              << std::endl;
  }

  options o_;
  tcp::endpoint server_, second_;
  std::vector<user_state> users_;
  std::vector<connection> conns_;
  std::size_t per_user_ = 1;
  clock_type::time_point start_, measure_from_, end_;
  std::uint64_t deliveries_ = 0, bytes_ = 0, runs_completed_ = 0;
  std::vector<std::uint32_t> latencies_us_, remote_latencies_us_;
};

}  // namespace

int main(int argc, char** argv) {
  options o;
  try {
    o = parse(argc, argv);
  } catch (const usage_error& e) {
    std::cerr << "uniws-load: " << e.what() << "\n"
              << "usage: uniws-load --port P [--second-port P2] [--address A] [--users K] [--connections C] "
                 "[--seconds D]\n"
                 "                  [--warmup S] [--mode agents|broadcast|idle|stalled] [--rate R]\n"
                 "                  [--steps N] [--pad BYTES] [--first-user U] [--bind ADDRESS]\n";
    return 2;
  }
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
  }
  net::io_context io(1);
  load l(o);
  int status = 0;
  net::co_spawn(io, l.run(), [&](std::exception_ptr e) {
    if (e) {
      try {
        std::rethrow_exception(e);
      } catch (const std::exception& x) {
        std::cerr << "uniws-load: " << x.what() << "\n";
        status = 1;
      }
    }
    io.stop();
  });
  io.run();
  return status;
}
