// tests/support/redis_process.hpp - a real redis-server for the cluster tests: on
// 127.0.0.1, a free port, its own temporary directory, no persistence. It can be killed and
// started again on the same port (the outage tests).
#pragma once

#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace uniws_test {

class redis_process {
 public:
  /// `extra`: more redis-server arguments (e.g. --cluster-enabled yes); "{port}" stands for the
  /// port (e.g. --port 0 --tls-port {port}: TLS only).
  explicit redis_process(std::vector<std::string> extra = {}) : port_(free_port()), extra_(std::move(extra)) {
    dir_ = std::filesystem::temp_directory_path() /
           ("uniws-redis-" + std::to_string(getpid()) + "-" + std::to_string(port_));
    std::filesystem::create_directories(dir_);
    start();
  }
  redis_process(const redis_process&) = delete;
  redis_process& operator=(const redis_process&) = delete;
  ~redis_process() {
    kill();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  [[nodiscard]] unsigned short port() const noexcept { return port_; }
  [[nodiscard]] std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

  void start() {
    std::vector<std::string> args{"redis-server", "--port", std::to_string(port_), "--bind", "127.0.0.1",
                                  "--save",       "",       "--appendonly",        "no",     "--dir",
                                  dir_.string()};
    for (std::string a : extra_) args.push_back(a == "{port}" ? std::to_string(port_) : a);
    std::vector<char*> argv;
    for (auto& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, (dir_ / "log").c_str(), 01 | 0100 | 02000,
                                     0644);
    const int rc = posix_spawnp(&pid_, "redis-server", &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    if (rc != 0) throw std::runtime_error("cannot start redis-server (scripts/setup.sh installs it)");
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (!accepts() && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    if (!accepts()) throw std::runtime_error("redis-server did not start on port " + std::to_string(port_));
  }

  /// Who the helpers below log in as (a Redis with `requirepass` or ACL users).
  void log_in_as(std::string user, std::string password) {
    user_ = std::move(user);
    password_ = std::move(password);
  }

  /// redis-cli's answer to one command (its output, without the trailing newline).
  [[nodiscard]] std::string cli(const std::vector<std::string>& args) const {
    std::string command = "redis-cli --no-auth-warning -p " + std::to_string(port_);
    if (!user_.empty()) command += " --user " + quoted(user_);
    if (!password_.empty()) command = "REDISCLI_AUTH=" + quoted(password_) + " " + command;
    for (const auto& a : args) command += " " + quoted(a);
    FILE* out = popen(command.c_str(), "r");
    if (!out) throw std::runtime_error("cannot run redis-cli");
    std::string text;
    char buffer[512];
    while (const std::size_t n = fread(buffer, 1, sizeof buffer, out)) text.append(buffer, n);
    pclose(out);
    while (!text.empty() && text.back() == '\n') text.pop_back();
    return text;
  }

  /// How many connections subscribe to `channel` (PUBSUB NUMSUB); -1 if Redis did not answer.
  [[nodiscard]] int subscribers(const std::string& channel) const {
    const std::string answer = cli({"PUBSUB", "NUMSUB", channel});  // "channel\ncount"
    const auto line = answer.rfind('\n');
    if (line == std::string::npos || answer.substr(0, line) != channel) return -1;
    return std::atoi(answer.c_str() + line + 1);
  }

  /// SIGKILL: Redis goes away as in a crash.
  void kill() {
    if (pid_ <= 0) return;
    ::kill(pid_, SIGKILL);
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
  }

 private:
  // A free port below 55536 whose port + 10000 is free too: a cluster-enabled Redis listens
  // there for its cluster bus.
  static unsigned short free_port() {
    for (int attempt = 0; attempt < 200; ++attempt) {
      const unsigned short port = bound_port(0);
      if (port < 55536 && bound_port(static_cast<unsigned short>(port + 10000)) != 0) return port;
    }
    throw std::runtime_error("no free port");
  }
  // Binds `port` (0: any) and lets it go: the port bound, or 0 if it is taken.
  static unsigned short bound_port(unsigned short port) {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    socklen_t len = sizeof a;
    const bool ok = bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
                    getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0;
    close(fd);
    return ok ? ntohs(a.sin_port) : 0;
  }
  bool accepts() const {
    const int fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port_);
    const bool ok = connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    close(fd);
    return ok;
  }

  // For the shell: 'text', with each ' written as '\''.
  static std::string quoted(const std::string& text) {
    std::string out = "'";
    for (char c : text) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
    return out + "'";
  }

  unsigned short port_;
  std::vector<std::string> extra_;
  std::filesystem::path dir_;
  pid_t pid_ = -1;
  std::string user_, password_;
};

}  // namespace uniws_test
