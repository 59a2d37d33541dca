// tests/support/server_process.hpp - runs uniws-golden-path as a child process on a free
// loopback port, reads its port from the first stdout line, and stops it with a signal.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace uniws_test {

class server_process {
 public:
  explicit server_process(std::vector<std::string> args = {}) {
    std::vector<std::string> argv_storage{UNIWS_GOLDEN_PATH_SERVER, "--port", "0", "--address", "127.0.0.1"};
    argv_storage.insert(argv_storage.end(), args.begin(), args.end());
    std::vector<char*> argv;
    for (auto& a : argv_storage) argv.push_back(a.data());
    argv.push_back(nullptr);

    int out[2];
    if (pipe(out) != 0) throw std::runtime_error("pipe failed");
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, out[1], STDOUT_FILENO);
    posix_spawn_file_actions_addclose(&actions, out[0]);
    const int rc = posix_spawn(&pid_, argv[0], &actions, nullptr, argv.data(), environ);
    posix_spawn_file_actions_destroy(&actions);
    close(out[1]);
    if (rc != 0) throw std::runtime_error("cannot start " + argv_storage[0]);
    stdout_ = fdopen(out[0], "r");

    char line[256] = {};
    if (!fgets(line, sizeof line, stdout_)) throw std::runtime_error("the server printed nothing");
    first_line_ = line;
    if (!first_line_.empty() && first_line_.back() == '\n') first_line_.pop_back();
    const auto colon = first_line_.rfind(':');
    if (first_line_.rfind("listening on http://127.0.0.1:", 0) != 0 || colon == std::string::npos)
      throw std::runtime_error("unexpected first line: " + first_line_);
    port_ = static_cast<unsigned short>(std::stoi(first_line_.substr(colon + 1)));
  }

  server_process(const server_process&) = delete;
  server_process& operator=(const server_process&) = delete;

  ~server_process() {
    if (pid_ > 0 && !exited_) {
      kill(pid_, SIGKILL);
      int status = 0;
      waitpid(pid_, &status, 0);
    }
    if (stdout_) fclose(stdout_);
  }

  [[nodiscard]] unsigned short port() const noexcept { return port_; }
  [[nodiscard]] const std::string& first_line() const noexcept { return first_line_; }
  [[nodiscard]] pid_t pid() const noexcept { return pid_; }

  /// Sends `sig` and waits (up to `timeout`) for the exit status; -1 if it did not exit.
  int stop(int sig = SIGTERM, std::chrono::milliseconds timeout = std::chrono::seconds(15)) {
    kill(pid_, sig);
    return wait_for_exit(timeout);
  }

  /// Waits (up to `timeout`) for the exit the server is already making, e.g. after a SIGTERM
  /// sent earlier: a second signal could land after its handler is gone and kill it.
  int wait_for_exit(std::chrono::milliseconds timeout = std::chrono::seconds(15)) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        exited_ = true;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return -1;
  }

  /// Resident set size in KiB, from /proc.
  [[nodiscard]] long rss_kib() const {
    std::ifstream status("/proc/" + std::to_string(pid_) + "/status");
    std::string key;
    while (status >> key) {
      if (key == "VmRSS:") {
        long kib = 0;
        status >> kib;
        return kib;
      }
      status.ignore(4096, '\n');
    }
    return -1;
  }

 private:
  pid_t pid_ = -1;
  bool exited_ = false;
  FILE* stdout_ = nullptr;
  std::string first_line_;
  unsigned short port_ = 0;
};

}  // namespace uniws_test
