// Nodes log in to a Redis that asks for it: `requirepass`, an ACL user allowed only uniws's keys,
// channels and commands (the least-privilege line docs/scaling.md gives), and a wrong password:
// refused, counted, shown on /health, retried until Redis takes it. Over TLS (Redis' own
// tls-port, certificates made by openssl): a certificate from another CA or for another name is
// refused the same way. And a Redis that never answers is given up on after the connect timeout.
#include "../../examples/golden_path/client.hpp"
#include "redis_process.hpp"
#include "server_process.hpp"

#include <catch2/catch.hpp>

#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace uniws_test;
using namespace uniws_client::sync;
using namespace std::chrono_literals;

namespace {

const std::string secret = "a-cluster-secret-0123456789";

// The least-privilege ACL of docs/scaling.md, for user `uniws` (single Redis: PUBLISH and
// SUBSCRIBE; the cluster's sharded commands are in the docs' line too). The default user is
// off, as on a managed Redis: a connection that does not log in can do nothing.
std::vector<std::string> acl_user(const std::string& password) {
  return {"--user",       "default",  "off",           "--user",   "uniws", "on",      ">" + password,
          "resetkeys",    "~uniws:*", "resetchannels", "&uniws:*", "-@all", "+eval",   "+subscribe",
          "+unsubscribe", "+get",     "+set",          "+incr",    "+del",  "+exists", "+expire",
          "+time",        "+xadd",    "+xrange",       "+publish"};
}

// A file holding `password` (and a newline, as editors leave one), removed at the end.
struct password_file {
  explicit password_file(const std::string& password)
      : path(std::filesystem::temp_directory_path() /
             ("uniws-redis-pw-" + std::to_string(getpid()) + "-" +
              std::to_string(reinterpret_cast<std::uintptr_t>(this)))) {
    std::ofstream(path) << password << "\n";
  }
  ~password_file() { std::filesystem::remove(path); }
  std::filesystem::path path;
};

std::vector<std::string> node_args(const redis_process& redis, const password_file& pw,
                                   const std::string& user = {}) {
  std::vector<std::string> args{
      "--agent-delay-ms", "1", "--jwt-secret", secret, "--redis", redis.address(), "--redis-password-file",
      pw.path.string()};
  if (!user.empty()) args.insert(args.end(), {"--redis-user", user});
  return args;
}

json::object stats(const server_process& node) {
  return http_request(node.port(), http::verb::get, "/stats").json().as_object();
}
std::string health(const server_process& node) {
  return std::string(http_request(node.port(), http::verb::get, "/health").json().at("broker").as_string());
}

template <class Condition>
void wait_until(Condition done, std::chrono::seconds limit = 15s) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!done() && std::chrono::steady_clock::now() < deadline) std::this_thread::sleep_for(50ms);
  REQUIRE(done());
}

json::object join(const std::string& thread) { return json::object{{"type", "join"}, {"thread_id", thread}}; }

// Joins and waits for the answer: the store's, once this node's subscription is live.
void join_answered(ws_client& ws, const std::string& thread) {
  ws.show_joined(true);
  ws.send(join(thread));
  auto answer = ws.read(5s);
  ws.show_joined(false);
  REQUIRE(answer);
  REQUIRE(answer->at("type").as_string() == "joined");
}

// A run started on `a` reaches alice's connection on `b` (through Redis, so the login held on
// both of each node's connections) and on `a`, the same seqs on both.
void check_cross_node(server_process& a, server_process& b) {
  const std::string token = login(a.port(), "alice", "alice-pw");
  ws_client on_a(a.port(), token), on_b(b.port(), token);
  join_answered(on_a, "t");
  join_answered(on_b, "t");
  on_a.send(json::object{{"type", "run_agent"}, {"thread_id", "t"}, {"message", "hi"}});
  const auto got_a = on_a.read_until("agent_completed");
  const auto got_b = on_b.read_until("agent_completed");
  REQUIRE(got_a.size() == 5);
  REQUIRE(got_b.size() == 5);
  for (std::size_t i = 0; i < 5; ++i) CHECK(got_b[i].at("seq") == got_a[i].at("seq"));
  CHECK(stats(a).at("broker_published").as_int64() == 5);
}

}  // namespace

TEST_CASE("redis login: requirepass, the password from a file, on every connection", "[proto-C2]") {
  const std::string password = "a long password, with spaces";
  redis_process redis({"--requirepass", password});
  redis.log_in_as("", password);
  password_file pw(password);
  server_process a(node_args(redis, pw)), b(node_args(redis, pw));
  wait_until([&] { return health(a) == "up" && health(b) == "up"; });
  check_cross_node(a, b);
  CHECK(stats(a).at("broker_auth_failures").as_int64() == 0);
  // /config says there is a password, never which.
  const auto config = http_request(a.port(), http::verb::get, "/config");
  CHECK(config.json().at("redis_auth").as_string() == "password");
  CHECK(config.body.find("spaces") == std::string::npos);
  // The ps line does not hold it either: only the file's name is on the command line.
  std::ifstream cmdline("/proc/" + std::to_string(a.pid()) + "/cmdline");
  const std::string args((std::istreambuf_iterator<char>(cmdline)), std::istreambuf_iterator<char>());
  CHECK(args.find("spaces") == std::string::npos);
  CHECK(a.stop() == 0);
  CHECK(b.stop() == 0);
}

TEST_CASE("redis login: an ACL user allowed only uniws's keys, channels and commands", "[proto-C2]") {
  redis_process redis(acl_user("uniws-pw"));
  redis.log_in_as("uniws", "uniws-pw");
  // The user really is that narrow: another key, or a command uniws does not use, is refused.
  CHECK(redis.cli({"GET", "other:key"}).find("NOPERM") != std::string::npos);
  CHECK(redis.cli({"KEYS", "*"}).find("NOPERM") != std::string::npos);
  password_file pw("uniws-pw");
  server_process a(node_args(redis, pw, "uniws")), b(node_args(redis, pw, "uniws"));
  wait_until([&] { return health(a) == "up" && health(b) == "up"; });
  check_cross_node(a, b);
  CHECK(http_request(a.port(), http::verb::get, "/config").json().at("redis_user").as_string() == "uniws");
  CHECK(a.stop() == 0);
  CHECK(b.stop() == 0);
}

TEST_CASE(
    "redis login: a wrong password is refused, counted, shown on /health and retried until Redis takes it",
    "[proto-C2][proto-H4]") {
  redis_process redis({"--requirepass", "the-right-one"});
  redis.log_in_as("", "the-right-one");
  password_file pw("a-wrong-one");
  server_process a(node_args(redis, pw));
  // Retried with backoff: refused more than once, and the node says so.
  wait_until([&] { return stats(a).at("broker_auth_failures").as_int64() >= 3; });
  CHECK(health(a) == "refused");
  CHECK(stats(a).at("broker_connected").as_int64() == 0);
  CHECK(stats(a).at("broker_refused").as_int64() == 1);
  CHECK(http_request(a.port(), http::verb::get, "/health").status == 200);  // it serves its own users
  // The operator fixes Redis' side: the next retry logs in, and nothing is refused any more.
  REQUIRE(redis.cli({"CONFIG", "SET", "requirepass", "a-wrong-one"}) == "OK");
  wait_until([&] { return health(a) == "up"; });
  CHECK(stats(a).at("broker_refused").as_int64() == 0);
  CHECK(a.stop() == 0);
}

TEST_CASE("redis login: no password given to a Redis that wants one is refused at connect, not per command",
          "[proto-C2][proto-H4]") {
  redis_process redis({"--requirepass", "the-right-one"});
  server_process a({"--jwt-secret", secret, "--redis", redis.address()});
  wait_until([&] { return stats(a).at("broker_auth_failures").as_int64() >= 2; });
  CHECK(health(a) == "refused");
  CHECK(stats(a).at("broker_connected").as_int64() == 0);
  CHECK(a.stop() == 0);
}

namespace {

// A "Redis" that accepts connections and never says a word (a black hole behind a proxy or a
// hung server): counts what it accepted, holds them open until it goes.
class silent_listener {
 public:
  silent_listener() : fd_(socket(AF_INET, SOCK_STREAM, 0)) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof a;
    if (bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 || listen(fd_, 64) != 0 ||
        getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0)
      throw std::runtime_error("cannot listen");
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] {
      while (!stop_) {
        pollfd p{fd_, POLLIN, 0};
        if (poll(&p, 1, 50) <= 0) continue;
        if (const int c = accept(fd_, nullptr, nullptr); c >= 0) {
          held_.push_back(c);
          ++accepted_;
        }
      }
    });
  }
  silent_listener(const silent_listener&) = delete;
  silent_listener& operator=(const silent_listener&) = delete;
  ~silent_listener() {
    stop_ = true;
    thread_.join();
    for (int c : held_) close(c);
    close(fd_);
  }
  [[nodiscard]] std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  [[nodiscard]] int accepted() const { return accepted_; }

 private:
  int fd_;
  unsigned short port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<int> accepted_{0};
  std::vector<int> held_;
  std::thread thread_;
};

}  // namespace

TEST_CASE(
    "redis connect: a Redis that accepts and never answers is given up on after the connect timeout, "
    "and tried again") {
  silent_listener hole;
  server_process a({"--jwt-secret", secret, "--redis", hole.address()});
  // Two connections an attempt; the second attempt comes after the 2 s timeout and a backoff.
  wait_until([&] { return hole.accepted() >= 4; }, 10s);
  CHECK(health(a) == "down");
  CHECK(stats(a).at("broker_connected").as_int64() == 0);
  CHECK(a.stop() == 0);
}

namespace {

// Certificates made once per run by tests/support/make_redis_certs.sh, removed at exit.
struct cert_dir {
  cert_dir()
      : path(std::filesystem::temp_directory_path() / ("uniws-redis-certs-" + std::to_string(getpid()))) {
    const std::string command = "sh '" UNIWS_TEST_SUPPORT_DIR "/make_redis_certs.sh' '" + path.string() + "'";
    if (std::system(command.c_str()) != 0) throw std::runtime_error("make_redis_certs.sh failed");
  }
  cert_dir(const cert_dir&) = delete;
  cert_dir& operator=(const cert_dir&) = delete;
  ~cert_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  std::filesystem::path path;
};
const std::filesystem::path& certs() {
  static const cert_dir dir;
  return dir.path;
}
std::string cert(const std::string& name) { return (certs() / name).string(); }

// Redis on TLS only, with the certificate `server` (and its key), checking clients' certificates.
std::vector<std::string> tls_redis(const std::string& server) {
  return {"--port",
          "0",
          "--tls-port",
          "{port}",
          "--tls-cert-file",
          cert(server + ".pem"),
          "--tls-key-file",
          cert(server + ".key"),
          "--tls-ca-cert-file",
          cert("ca.pem"),
          "--tls-auth-clients",
          "yes"};
}

std::vector<std::string> tls_node(const redis_process& redis) {
  return {"--agent-delay-ms", "1",
          "--jwt-secret",     secret,
          "--redis",          redis.address(),
          "--redis-tls-ca",   cert("ca.pem"),
          "--redis-tls-cert", cert("client.pem"),
          "--redis-tls-key",  cert("client.key")};
}

}  // namespace

TEST_CASE("redis TLS: nodes verify Redis' certificate, show their own, and log in over it", "[proto-C2]") {
  auto redis_args = tls_redis("redis");
  redis_args.insert(redis_args.end(), {"--requirepass", "over-tls"});
  redis_process redis(redis_args);
  password_file pw("over-tls");
  auto args = tls_node(redis);
  args.insert(args.end(), {"--redis-password-file", pw.path.string()});
  server_process a(args), b(args);
  wait_until([&] { return health(a) == "up" && health(b) == "up"; });
  check_cross_node(a, b);
  CHECK(stats(a).at("broker_tls_failures").as_int64() == 0);
  CHECK(http_request(a.port(), http::verb::get, "/config").json().at("redis_tls").as_bool());
  CHECK(a.stop() == 0);
  CHECK(b.stop() == 0);
}

TEST_CASE("redis TLS: a certificate from another CA, or for another name, is refused, counted and retried",
          "[proto-C2][proto-H4]") {
  std::string server;
  SECTION("another CA") { server = "other-ca-redis"; }
  SECTION("another name") { server = "wrong-name-redis"; }
  redis_process redis(tls_redis(server));
  server_process a(tls_node(redis));
  wait_until([&] { return stats(a).at("broker_tls_failures").as_int64() >= 2; });
  CHECK(health(a) == "refused");
  CHECK(stats(a).at("broker_connected").as_int64() == 0);
  CHECK(stats(a).at("broker_auth_failures").as_int64() == 0);
  CHECK(a.stop() == 0);
}
