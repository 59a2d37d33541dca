// uniws_soak: churn, isolation, abuse and fault soaks against the real uniws-golden-path
// binary over loopback. One scenario per run:
//
//   uniws_soak churn     [--cycles N] [--concurrency N]
//   uniws_soak isolation [--users N] [--seconds N]
//   uniws_soak abuse     [--attempts N] [--flood N]
//   uniws_soak faults    [--connections N]
//
// CI runs each briefly (ctest -L soak); scripts/soak.sh runs them at full size. Each prints
// its figures as text and as one JSON line, and exits 1 if any check failed.
#include "../../examples/golden_path/async_client.hpp"

#include "../support/server_process.hpp"

#include <sys/resource.h>

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <random>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

namespace {

using namespace uniws_client;
using namespace std::chrono_literals;
using clock_type = std::chrono::steady_clock;

#if defined(UNIWS_SERVER_SANITIZED)
constexpr bool server_sanitized = true;  // its RSS is the sanitizer's shadow and quarantine
#else
constexpr bool server_sanitized = false;
#endif

// ---- figures and checks ----

class report {
 public:
  explicit report(std::string scenario) : scenario_(std::move(scenario)) {}

  void figure(const std::string& name, double value) { figures_.emplace_back(name, value); }
  void check(bool ok, const std::string& what) {
    if (!ok) failures_.push_back(what);
  }

  int print() const {
    std::cout << "soak " << scenario_ << ": " << (failures_.empty() ? "PASS" : "FAIL") << "\n";
    json::object figures;
    for (const auto& [name, value] : figures_) {
      std::cout << "  " << name << " = " << value << "\n";
      figures[name] = value;
    }
    json::array failed;
    for (const auto& f : failures_) {
      std::cout << "  FAILED: " << f << "\n";
      failed.emplace_back(f);
    }
    std::cout << json::serialize(json::object{{"soak", scenario_},
                                              {"pass", failures_.empty()},
                                              {"figures", figures},
                                              {"failures", failed}})
              << std::endl;
    return failures_.empty() ? 0 : 1;
  }

 private:
  std::string scenario_;
  std::vector<std::pair<std::string, double>> figures_;
  std::vector<std::string> failures_;
};

// Progress on stderr, so a long soak shows where it is (and a hung one where it stopped).
void progress(const std::string& what) {
  static const auto start = clock_type::now();
  std::cerr << "[" << std::chrono::duration_cast<std::chrono::milliseconds>(clock_type::now() - start).count()
            << " ms] " << what << std::endl;
}

long open_fds(pid_t pid) {
  long n = 0;
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec))
    ++n;
  return n;
}

// `count` users u0..u{count-1}, password pw-<i>, in a file the server reads with --users.
class users_file {
 public:
  explicit users_file(std::size_t count) : count_(count) {
    path_ = std::filesystem::temp_directory_path() / ("uniws-soak-users-" + std::to_string(getpid()));
    std::ofstream out(path_);
    for (std::size_t i = 0; i < count; ++i) out << name(i) << ":" << password(i) << "\n";
  }
  ~users_file() {
    std::error_code ec;
    std::filesystem::remove(path_, ec);
  }
  users_file(const users_file&) = delete;
  users_file& operator=(const users_file&) = delete;

  [[nodiscard]] std::string path() const { return path_.string(); }
  [[nodiscard]] std::size_t size() const { return count_; }
  static std::string name(std::size_t i) { return "u" + std::to_string(i); }
  static std::string password(std::size_t i) { return "pw-" + std::to_string(i); }

 private:
  std::size_t count_;
  std::filesystem::path path_;
};

tcp::endpoint endpoint_of(const uniws_test::server_process& server) {
  return {net::ip::make_address("127.0.0.1"), server.port()};
}

std::uint64_t counter(const json::object& s, const char* key) { return s.at(key).to_number<std::uint64_t>(); }

// Polls /stats until `done(stats)` or the deadline; the last stats seen.
template <class Pred>
net::awaitable<json::object> wait_stats(tcp::endpoint server, Pred done, std::chrono::milliseconds limit) {
  const auto deadline = clock_type::now() + limit;
  net::steady_timer timer(co_await net::this_coro::executor);
  for (;;) {
    json::object s = co_await stats(server);
    if (done(s) || clock_type::now() >= deadline) co_return s;
    timer.expires_after(100ms);
    co_await timer.async_wait(net::use_awaitable);
  }
}

net::awaitable<std::vector<std::string>> login_all(tcp::endpoint server, const users_file& users) {
  std::vector<std::string> tokens(users.size());
  std::size_t next = 0;
  std::string why;
  const std::size_t failed = co_await run_all(
      std::min<std::size_t>(32, users.size()),
      [&](std::size_t) -> net::awaitable<void> {
        while (next < tokens.size()) {
          const std::size_t i = next++;
          tokens[i] = co_await login(server, users_file::name(i), users_file::password(i));
        }
      },
      &why);
  if (failed) throw std::runtime_error("logins failed: " + why);
  co_return tokens;
}

// One golden path: a connection runs an agent and gets its five events in order.
net::awaitable<bool> golden_path_works(tcp::endpoint server, std::string user, std::string password) {
  auto ws = co_await open_websocket(server, co_await login(server, user, password));
  co_await send_json(*ws, run_agent("golden", "still serving?"));
  const char* five[] = {"agent_started", "agent_thinking", "tool_executing", "tool_completed",
                        "agent_completed"};
  for (const char* type : five) {
    auto f = co_await read_json(*ws);
    if (!f || f->at("type").as_string() != type) co_return false;
  }
  co_await ws->async_close(websocket::close_code::normal, net::use_awaitable);
  co_return true;
}

// Runs `body` to completion on one thread, within `limit`.
template <class Body>
void run_scenario(report& r, std::chrono::seconds limit, Body body) {
  net::io_context io;
  bool finished = false;
  net::co_spawn(io, body(), [&](std::exception_ptr e) {
    finished = true;
    io.stop();  // whatever the body left pending (a failed check's reader) ends with it
    if (!e) return;
    try {
      std::rethrow_exception(e);
    } catch (const std::exception& x) {
      r.check(false, std::string("the scenario threw: ") + x.what());
    }
  });
  io.run_for(limit);
  r.check(finished, "the scenario did not finish within " + std::to_string(limit.count()) + " s");
}

// ---- churn: connect -> join -> disconnect, then the idle sweep returns the server to baseline ----

int churn(std::size_t cycles, std::size_t concurrency) {
  report r("churn");
  users_file users(100);
  uniws_test::server_process server(
      {"--users", users.path(), "--user-idle-ttl", "1", "--agent-delay-ms", "0"});
  const tcp::endpoint ep = endpoint_of(server);

  run_scenario(r, 30min, [&]() -> net::awaitable<void> {
    const auto tokens = co_await login_all(ep, users);
    std::size_t failed_cycles = 0;
    std::string why;

    auto run_cycles = [&](std::size_t n) -> net::awaitable<void> {
      std::size_t next = 0;
      failed_cycles += co_await run_all(
          concurrency,
          [&](std::size_t) -> net::awaitable<void> {
            while (next < n) {
              const std::size_t i = next++;
              auto ws = co_await open_websocket(ep, tokens[i % tokens.size()]);
              co_await send_json(*ws, join("t-" + std::to_string(i % 7)));
              co_await send_json(*ws, ping());
              auto pong = co_await read_json(*ws);  // the join was handled before the ping
              if (!pong || pong->at("type").as_string() != "pong")
                throw std::runtime_error("no pong after join");
              co_await ws->async_close(websocket::close_code::normal, net::use_awaitable);
            }
          },
          &why);
    };
    auto idle = [](const json::object& s) {
      return counter(s, "users") == 0 && counter(s, "connections") == 0;
    };
    net::steady_timer settle(co_await net::this_coro::executor);

    // Warm-up: allocator pools and the registry's buckets reach their working size.
    const std::size_t warm_up = std::max<std::size_t>(500, cycles / 10);
    co_await run_cycles(warm_up);
    co_await wait_stats(ep, idle, 15s);
    settle.expires_after(300ms);
    co_await settle.async_wait(net::use_awaitable);
    const long rss_before = server.rss_kib(), fds_before = open_fds(server.pid());

    const auto start = clock_type::now();
    co_await run_cycles(cycles);
    const double seconds = std::chrono::duration<double>(clock_type::now() - start).count();
    const json::object after = co_await wait_stats(ep, idle, 15s);
    settle.expires_after(300ms);
    co_await settle.async_wait(net::use_awaitable);
    const long rss_after = server.rss_kib(), fds_after = open_fds(server.pid());

    r.figure("cycles", static_cast<double>(cycles));
    r.figure("cycles_per_s", static_cast<double>(cycles) / seconds);
    r.figure("failed_cycles", static_cast<double>(failed_cycles));
    r.figure("users_after_sweep", static_cast<double>(counter(after, "users")));
    r.figure("connections_after", static_cast<double>(counter(after, "connections")));
    r.figure("websocket_sessions", static_cast<double>(counter(after, "websocket_sessions")));
    r.figure("rss_kib_before", static_cast<double>(rss_before));
    r.figure("rss_kib_after", static_cast<double>(rss_after));
    r.figure("fds_before", static_cast<double>(fds_before));
    r.figure("fds_after", static_cast<double>(fds_after));

    r.check(failed_cycles == 0, std::to_string(failed_cycles) + " cycles failed, first: " + why);
    r.check(counter(after, "users") == 0, "registry users did not return to 0 after the idle sweep");
    r.check(counter(after, "connections") == 0, "connections did not return to 0");
    r.check(counter(after, "websocket_sessions") == warm_up + cycles, "the server did not see every session");
    r.check(fds_after == fds_before,
            "open descriptors went from " + std::to_string(fds_before) + " to " + std::to_string(fds_after));
    // Allocator noise is well under a megabyte; a leak of even 20 bytes per cycle at 100k is 2 MB.
    if (!server_sanitized)
      r.check(rss_after - rss_before <= 1024,
              "RSS grew by " + std::to_string(rss_after - rss_before) + " KiB");
  });
  const int exit_code = server.stop();
  r.check(exit_code == 0, "the server exited with " + std::to_string(exit_code) + " (a sanitizer finding?)");
  return r.print();
}

// ---- isolation: many users x 2 connections, random runs; exactly once, in order, own user only ----

struct connection_state {
  std::size_t user = 0;
  std::unique_ptr<ws_stream> ws;
  std::optional<std::int64_t> last_seq;
  std::uint64_t events = 0, completed = 0;
  std::unordered_map<std::string, unsigned> seen;  // run_id -> bit per event type
};

struct isolation_totals {
  std::uint64_t deliveries = 0, cross_user = 0, duplicates = 0, seq_breaks = 0, unexpected = 0,
                incomplete_runs = 0, missing = 0;
};

unsigned type_bit(std::string_view type) {
  static constexpr std::string_view five[] = {"agent_started", "agent_thinking", "tool_executing",
                                              "tool_completed", "agent_completed"};
  for (unsigned i = 0; i < 5; ++i)
    if (type == five[i]) return 1u << i;
  return 0;
}

int isolation(std::size_t user_count, std::chrono::seconds duration) {
  report r("isolation");
  users_file users(user_count);
  uniws_test::server_process server({"--users", users.path(), "--agent-delay-ms", "1"});
  const tcp::endpoint ep = endpoint_of(server);

  run_scenario(r, duration + 10min, [&]() -> net::awaitable<void> {
    auto ex = co_await net::this_coro::executor;
    const auto tokens = co_await login_all(ep, users);
    std::vector<connection_state> conns(2 * user_count);
    std::vector<std::unique_ptr<net::steady_timer>> wake;  // per user: a run completed somewhere
    std::vector<std::uint64_t> runs(user_count, 0);
    std::unordered_map<std::string, std::size_t> run_owner;
    isolation_totals t;

    // Open and join. Every connection joins the same thread name: only the manager's user
    // scoping keeps users apart.
    std::size_t next = 0;
    std::string why;
    const std::size_t open_failed = co_await run_all(
        64,
        [&](std::size_t) -> net::awaitable<void> {
          while (next < conns.size()) {
            const std::size_t i = next++;
            conns[i].user = i / 2;
            conns[i].ws = co_await open_websocket(ep, tokens[i / 2]);
            co_await send_json(*conns[i].ws, join("shared"));
            co_await send_json(*conns[i].ws, ping());
            auto pong = co_await read_json(*conns[i].ws);
            if (!pong || pong->at("type").as_string() != "pong")
              throw std::runtime_error("no pong after join");
          }
        },
        &why);
    r.check(open_failed == 0, "opening connections failed: " + why);
    if (open_failed) co_return;
    for (std::size_t u = 0; u < user_count; ++u)
      wake.push_back(std::make_unique<net::steady_timer>(ex, net::steady_timer::time_point::max()));

    auto reader = [&](std::size_t i) -> net::awaitable<void> {
      connection_state& c = conns[i];
      while (auto f = co_await read_json(*c.ws)) {
        ++t.deliveries;
        ++c.events;
        const std::string_view type = f->at("type").as_string();
        const unsigned bit = type_bit(type);
        if (bit == 0 || f->at("thread_id").as_string() != "shared") {
          ++t.unexpected;
          continue;
        }
        const std::string run_id(f->at("run_id").as_string());
        if (type == "agent_started") {
          const std::string_view marker = f->at("payload").at("message").as_string();
          const std::size_t owner = std::stoul(std::string(marker.substr(0, marker.find('/'))));
          run_owner.emplace(run_id, owner);
        }
        const auto owner = run_owner.find(run_id);
        if (owner == run_owner.end() || owner->second != c.user) ++t.cross_user;
        const std::int64_t seq = f->at("seq").as_int64();
        if (c.last_seq && seq != *c.last_seq + 1) ++t.seq_breaks;
        c.last_seq = seq;
        unsigned& mask = c.seen[run_id];
        if (mask & bit) ++t.duplicates;
        mask |= bit;
        if (type == "agent_completed") {
          ++c.completed;
          wake[c.user]->cancel();
        }
      }
    };
    auto all_readers = run_all(conns.size(), reader);
    std::optional<std::size_t> readers_failed;
    net::co_spawn(ex, std::move(all_readers), [&](std::exception_ptr, std::size_t n) { readers_failed = n; });

    // Closed loop per user: a run from a random one of its connections, wait until both saw it
    // complete, think 0-20 ms, again.
    const auto deadline = clock_type::now() + duration;
    const auto start = clock_type::now();
    const std::size_t driver_failed = co_await run_all(
        user_count,
        [&](std::size_t u) -> net::awaitable<void> {
          std::minstd_rand rng(static_cast<unsigned>(u) + 1);
          net::steady_timer think(ex);
          while (clock_type::now() < deadline) {
            const std::uint64_t k = ++runs[u];
            co_await send_json(*conns[2 * u + rng() % 2].ws,
                               run_agent("shared", std::to_string(u) + "/" + std::to_string(k)));
            const auto give_up = clock_type::now() + 20s;
            while ((conns[2 * u].completed < k || conns[2 * u + 1].completed < k) &&
                   clock_type::now() < give_up) {
              wake[u]->expires_at(give_up);
              co_await wake[u]->async_wait(net::as_tuple(net::use_awaitable));
            }
            if (conns[2 * u].completed < k || conns[2 * u + 1].completed < k)
              throw std::runtime_error("user " + std::to_string(u) + ": run " + std::to_string(k) +
                                       " did not complete");
            think.expires_after(std::chrono::milliseconds(rng() % 21));
            co_await think.async_wait(net::use_awaitable);
          }
        },
        &why);
    const double seconds = std::chrono::duration<double>(clock_type::now() - start).count();

    std::uint64_t total_runs = 0;
    for (std::size_t i = 0; i < conns.size(); ++i) {
      const std::uint64_t expected = 5 * runs[conns[i].user];
      if (conns[i].events < expected) t.missing += expected - conns[i].events;
      for (const auto& [run, mask] : conns[i].seen)
        if (mask != 0b11111) ++t.incomplete_runs;
    }
    for (auto n : runs) total_runs += n;
    const json::object s = co_await stats(ep);

    for (auto& c : conns)
      co_await c.ws->async_close(websocket::close_code::normal, net::as_tuple(net::use_awaitable));
    net::steady_timer wait(ex);
    while (!readers_failed) {
      wait.expires_after(10ms);
      co_await wait.async_wait(net::use_awaitable);
    }

    r.figure("users", static_cast<double>(user_count));
    r.figure("connections", static_cast<double>(conns.size()));
    r.figure("seconds", seconds);
    r.figure("runs", static_cast<double>(total_runs));
    r.figure("deliveries_checked", static_cast<double>(t.deliveries));
    r.figure("deliveries_per_s", static_cast<double>(t.deliveries) / seconds);
    r.figure("cross_user_deliveries", static_cast<double>(t.cross_user));
    r.figure("duplicates", static_cast<double>(t.duplicates));
    r.figure("seq_breaks", static_cast<double>(t.seq_breaks));
    r.figure("missing", static_cast<double>(t.missing));
    r.figure("incomplete_runs", static_cast<double>(t.incomplete_runs));
    r.figure("server_messages_dropped", static_cast<double>(counter(s, "messages_dropped")));

    r.check(driver_failed == 0, std::to_string(driver_failed) + " users' drivers failed, first: " + why);
    r.check(*readers_failed == 0, "a reader failed");
    r.check(total_runs >= user_count, "fewer runs than users");
    r.check(t.deliveries == 2 * 5 * total_runs, "deliveries != 2 connections x 5 events x runs");
    r.check(t.cross_user == 0, "events reached another user");
    r.check(t.duplicates == 0, "an event arrived twice on one connection");
    r.check(t.seq_breaks == 0, "seq was not consecutive on a connection");
    r.check(t.unexpected == 0, "unexpected frames (errors or foreign threads)");
    r.check(t.missing == 0 && t.incomplete_runs == 0, "events missing");
    r.check(counter(s, "messages_dropped") == 0, "the server dropped messages");
  });
  const int exit_code = server.stop();
  r.check(exit_code == 0, "the server exited with " + std::to_string(exit_code));
  return r.print();
}

// ---- abuse: bad tokens, oversize frames, silent peers, bad JSON floods ----

int abuse(std::size_t attempts, std::size_t flood) {
  report r("abuse");
  // The bad-JSON flood is as fast as the client can write: the frame rate limit (limits_test.py's)
  // is raised so that every frame is parsed and answered.
  uniws_test::server_process server({"--max-message-size", "4096", "--handshake-timeout", "1",
                                     "--agent-delay-ms", "0", "--max-frames-per-second", "1000000"});
  const tcp::endpoint ep = endpoint_of(server);

  run_scenario(r, 20min, [&]() -> net::awaitable<void> {
    auto ex = co_await net::this_coro::executor;
    net::steady_timer timer(ex);

    // 1. Upgrades with no token, a forged one and a JWT whose signature was altered: all 401.
    // (Expired tokens, past the 30 s leeway, are jwt_tls_test.py's.)
    progress("abuse 1: Upgrades with no token, a forged one and an altered one");
    std::string altered = co_await login(ep, "alice", "alice-pw");
    altered[altered.size() - 5] = altered[altered.size() - 5] == 'A' ? 'B' : 'A';
    std::map<unsigned, std::size_t> statuses;
    std::size_t next = 0;
    std::string why;
    std::mt19937_64 rng(42);
    const auto start = clock_type::now();
    const std::size_t upgrade_errors = co_await run_all(
        32,
        [&](std::size_t) -> net::awaitable<void> {
          while (next < attempts) {
            const std::size_t i = next++;
            std::optional<std::string> bearer;
            if (i % 3 == 1) {
              char forged[33];
              std::snprintf(forged, sizeof forged, "%016llx%016llx", static_cast<unsigned long long>(rng()),
                            static_cast<unsigned long long>(rng()));
              bearer = forged;
            } else if (i % 3 == 2) {
              bearer = altered;
            }
            ++statuses[co_await upgrade_status(ep, bearer)];
          }
        },
        &why);
    const double upgrade_seconds = std::chrono::duration<double>(clock_type::now() - start).count();
    r.figure("bad_upgrades", static_cast<double>(attempts));
    r.figure("bad_upgrades_401", static_cast<double>(statuses[401]));
    r.figure("bad_upgrades_per_s", static_cast<double>(attempts) / upgrade_seconds);
    r.check(upgrade_errors == 0, "upgrade attempts failed at the socket level: " + why);
    r.check(statuses[401] == attempts, "not every bad upgrade got 401");
    r.check(co_await golden_path_works(ep, "alice", "alice-pw"),
            "the golden path failed after the bad upgrades");

    // 2. Frames over --max-message-size: closed with 1009, the server unaffected.
    progress("abuse 2: Frames over --max-message-size");
    constexpr std::size_t oversize_connections = 50;
    std::size_t closed_1009 = 0;
    next = 0;
    const std::size_t oversize_errors = co_await run_all(
        10,
        [&](std::size_t) -> net::awaitable<void> {
          while (next < oversize_connections) {
            ++next;
            auto ws = co_await open_websocket(ep, co_await login(ep, "bob", "bob-pw"));
            const std::string big(8192, 'x');
            ws->text(true);
            co_await ws->async_write(net::buffer(big), net::as_tuple(net::use_awaitable));
            if (co_await drain_until_closed(*ws) == 1009) ++closed_1009;
          }
        },
        &why);
    r.figure("oversize_frames", static_cast<double>(oversize_connections));
    r.figure("oversize_closed_1009", static_cast<double>(closed_1009));
    r.check(oversize_errors == 0 && closed_1009 == oversize_connections,
            "oversize frames were not all closed with 1009");

    // 3. Peers that open TCP and never finish a request: cut off by the handshake timeout (1 s).
    progress("abuse 3: Peers that open TCP and never finish a request");
    constexpr std::size_t silent_peers = 100;
    std::size_t cut_off = 0;
    double slowest_cut = 0;
    const std::size_t silent_errors =
        co_await run_all(silent_peers, [&](std::size_t i) -> net::awaitable<void> {
          tcp::socket socket(ex);
          co_await socket.async_connect(ep, net::use_awaitable);
          const auto opened = clock_type::now();
          if (i % 2 == 1) {  // half send a request line and stall mid-headers
            const std::string partial = "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n";
            co_await net::async_write(socket, net::buffer(partial), net::use_awaitable);
          }
          net::steady_timer give_up(ex, 10s);
          give_up.async_wait([&](beast::error_code ec) {
            if (!ec) socket.close();
          });
          char byte;
          auto [ec, n] =
              co_await socket.async_read_some(net::buffer(&byte, 1), net::as_tuple(net::use_awaitable));
          give_up.cancel();
          if (ec && ec != net::error::operation_aborted) {
            ++cut_off;
            slowest_cut =
                std::max(slowest_cut, std::chrono::duration<double>(clock_type::now() - opened).count());
          }
        });
    r.figure("silent_peers", static_cast<double>(silent_peers));
    r.figure("silent_peers_cut_off", static_cast<double>(cut_off));
    r.figure("slowest_cut_off_s", slowest_cut);
    r.check(silent_errors == 0 && cut_off == silent_peers, "silent peers were not all cut off");
    r.check(slowest_cut < 5.0, "a silent peer stayed connected for more than 5 s with a 1 s timeout");

    // 4. A flood of bad JSON: one error event each, counted, memory flat, connection open.
    progress("abuse 4: A flood of bad JSON");
    auto ws = co_await open_websocket(ep, co_await login(ep, "alice", "alice-pw"));
    const std::string bad[] = {"not json",
                               "{",
                               "[]",
                               R"({"type":"nope"})",
                               R"({"type":"run_agent"})",
                               R"({"type":"join","thread_id":""})",
                               R"({"type":42})",
                               "\"text\""};
    const long rss_before = server.rss_kib();
    const std::uint64_t bad_before = counter(co_await stats(ep), "bad_frames");
    // The reader counts error events until the pong that follows the flood: replies keep the
    // order of the frames, so the pong is last; what the queue's bound dropped is counted.
    std::size_t errors = 0, other = 0;
    bool pong = false, reader_done = false;
    auto count_errors = [&]() -> net::awaitable<void> {
      while (auto f = co_await read_json(*ws)) {
        const std::string_view type = f->at("type").as_string();
        if (type == "pong") {
          pong = true;
          co_return;
        }
        (type == "error" ? errors : other)++;
      }
    };
    net::co_spawn(ex, count_errors(), [&](std::exception_ptr) { reader_done = true; });
    for (std::size_t i = 0; i < flood; ++i) {
      ws->text(true);
      co_await ws->async_write(net::buffer(bad[i % std::size(bad)]), net::use_awaitable);
    }
    co_await send_json(*ws, ping());
    const auto flood_deadline = clock_type::now() + 60s;
    while (!reader_done && clock_type::now() < flood_deadline) {
      timer.expires_after(10ms);
      co_await timer.async_wait(net::use_awaitable);
    }
    const json::object after = co_await stats(ep);
    const long rss_after = server.rss_kib();
    r.figure("bad_json_frames", static_cast<double>(flood));
    r.figure("bad_json_errors_received", static_cast<double>(errors));
    r.figure("bad_json_server_counted", static_cast<double>(counter(after, "bad_frames") - bad_before));
    r.figure("bad_json_replies_dropped", static_cast<double>(counter(after, "replies_dropped")));
    r.figure("bad_json_rss_growth_kib", static_cast<double>(rss_after - rss_before));
    r.check(pong, "no pong after the flood: the connection did not survive it");
    if (!reader_done) co_return;  // its read is still pending: nothing more on this stream
    r.check(errors + counter(after, "replies_dropped") == flood && other == 0,
            "bad frames without an error event that was either received or counted as dropped");
    r.check(counter(after, "bad_frames") - bad_before == flood, "the server did not count every bad frame");
    if (!server_sanitized)
      r.check(rss_after - rss_before <= 4096,
              "memory grew by " + std::to_string(rss_after - rss_before) + " KiB");
    co_await ws->async_close(websocket::close_code::normal, net::as_tuple(net::use_awaitable));
    r.check(co_await golden_path_works(ep, "bob", "bob-pw"), "the golden path failed after the abuse");
  });
  const int exit_code = server.stop();
  r.check(exit_code == 0, "the server exited with " + std::to_string(exit_code));
  return r.print();
}

// ---- faults: peers vanishing mid-write, SIGTERM under load ----

int faults(std::size_t connections) {
  report r("faults");
  {
    // Two users hold every connection and run: the per-user limits are raised.
    uniws_test::server_process server({"--agent-delay-ms", "0", "--user-idle-ttl", "1", "--max-runs-per-user",
                                       "100000", "--max-connections-per-user", "100000"});
    const tcp::endpoint ep = endpoint_of(server);
    run_scenario(r, 10min, [&]() -> net::awaitable<void> {
      // Each peer starts a run of 200 x 32 KB thoughts, reads three frames, then resets.
      std::vector<std::string> tokens;  // not an initializer list of co_awaits: g++ 12 destroys those twice
      tokens.push_back(co_await login(ep, "alice", "alice-pw"));
      tokens.push_back(co_await login(ep, "bob", "bob-pw"));
      std::size_t next = 0;
      std::string why;
      const std::size_t failed = co_await run_all(
          8,
          [&](std::size_t) -> net::awaitable<void> {
            while (next < connections) {
              const std::size_t i = next++;
              auto ws = co_await open_websocket(ep, tokens[i % 2]);
              co_await send_json(*ws, run_agent("t-" + std::to_string(i), "big", 200, 32 * 1024));
              for (int k = 0; k < 3; ++k)
                if (!co_await read_json(*ws)) throw std::runtime_error("the run did not start");
              auto& socket = beast::get_lowest_layer(*ws).socket();
              socket.set_option(net::socket_base::linger(true, 0));
              socket.close();
            }
          },
          &why);
      const json::object s = co_await wait_stats(
          ep, [](const json::object& st) { return counter(st, "connections") == 0; }, 20s);
      r.figure("reset_mid_write", static_cast<double>(connections));
      r.figure("connections_after", static_cast<double>(counter(s, "connections")));
      r.figure("sends_to_closed", static_cast<double>(counter(s, "sends_to_closed")));
      r.figure("messages_dropped", static_cast<double>(counter(s, "messages_dropped")));
      r.check(failed == 0, "a resetting peer failed before its reset: " + why);
      r.check(counter(s, "connections") == 0, "connections left behind after peers reset");
      r.check(co_await golden_path_works(ep, "alice", "alice-pw"), "the golden path failed after the resets");
    });
    const int exit_code = server.stop();
    r.check(exit_code == 0, "the server exited with " + std::to_string(exit_code) + " after the resets");
  }
  {
    // SIGTERM while every connection's run is mid-stream: each connection gets a gap-free
    // prefix of its run (nothing queued is lost), then close 1001; the server exits 0.
    uniws_test::server_process server({"--agent-delay-ms", "5", "--drain-timeout-ms", "5000",
                                       "--max-runs-per-user", "100000", "--max-connections-per-user",
                                       "100000"});
    const tcp::endpoint ep = endpoint_of(server);
    std::size_t closed_1001 = 0, broken_prefix = 0, events = 0;
    std::string why;
    std::size_t failed = 0;
    run_scenario(r, 5min, [&]() -> net::awaitable<void> {
      auto ex = co_await net::this_coro::executor;
      std::vector<std::string> tokens;  // not an initializer list of co_awaits: g++ 12 destroys those twice
      tokens.push_back(co_await login(ep, "alice", "alice-pw"));
      tokens.push_back(co_await login(ep, "bob", "bob-pw"));
      std::vector<std::unique_ptr<ws_stream>> conns;
      for (std::size_t i = 0; i < connections; ++i) {
        conns.push_back(co_await open_websocket(ep, tokens[i % 2]));
        co_await send_json(*conns.back(), run_agent("t-" + std::to_string(i), "long", 1000, 256));
      }
      net::steady_timer timer(ex, 300ms);
      timer.async_wait([&](beast::error_code) { kill(server.pid(), SIGTERM); });
      failed = co_await run_all(
          connections,
          [&](std::size_t i) -> net::awaitable<void> {
            int expected_step = 1;
            bool started = false;
            while (auto f = co_await read_json(*conns[i])) {
              ++events;
              const std::string_view type = f->at("type").as_string();
              if (type == "agent_started") {
                started = true;
              } else if (type == "agent_thinking") {
                if (!started || f->at("payload").at("step").as_int64() != expected_step) ++broken_prefix;
                ++expected_step;
              }
            }
            if (conns[i]->reason().code == websocket::close_code::going_away) ++closed_1001;
          },
          &why);
    });
    const auto stop_start = clock_type::now();
    const int exit_code = server.wait_for_exit(20s);  // the timer sent the one SIGTERM
    r.figure("sigterm_connections", static_cast<double>(connections));
    r.figure("sigterm_closed_1001", static_cast<double>(closed_1001));
    r.figure("sigterm_events_before_close", static_cast<double>(events));
    r.figure("sigterm_exit_wait_s", std::chrono::duration<double>(clock_type::now() - stop_start).count());
    r.check(failed == 0, "a reader failed during the drain: " + why);
    r.check(closed_1001 == connections, "not every connection was closed with 1001");
    r.check(broken_prefix == 0, "a connection lost a queued event before the close");
    r.check(exit_code == 0, "the server exited with " + std::to_string(exit_code) + " after SIGTERM");
  }
  return r.print();
}

// ---- command line ----

std::size_t number(std::string_view text) {
  std::size_t v = 0;
  const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || v == 0)
    throw std::invalid_argument("expected a positive number, got \"" + std::string(text) + "\"");
  return v;
}

void raise_open_file_limit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
  }
}

}  // namespace

int main(int argc, char** argv) try {
  if (argc < 2) throw std::invalid_argument("which soak? churn, isolation, abuse or faults");
  const std::string scenario = argv[1];
  std::map<std::string, std::size_t> options;
  for (int i = 2; i + 1 < argc; i += 2) options[argv[i]] = number(argv[i + 1]);
  auto option = [&](const std::string& name, std::size_t fallback) {
    const auto it = options.find(name);
    return it == options.end() ? fallback : it->second;
  };
  raise_open_file_limit();
  if (scenario == "churn") return churn(option("--cycles", 100'000), option("--concurrency", 16));
  if (scenario == "isolation")
    return isolation(option("--users", 1000), std::chrono::seconds(option("--seconds", 120)));
  if (scenario == "abuse") return abuse(option("--attempts", 10'000), option("--flood", 100'000));
  if (scenario == "faults") return faults(option("--connections", 100));
  throw std::invalid_argument("unknown soak \"" + scenario + "\"");
} catch (const std::exception& e) {
  std::cerr << "uniws_soak: " << e.what() << "\n"
            << "usage: uniws_soak churn|isolation|abuse|faults [--cycles N] [--concurrency N] [--users N]\n"
               "                  [--seconds N] [--attempts N] [--flood N] [--connections N]\n";
  return 2;
}
