// uniws-hello: the smallest tour of uniws::task, when_all and sync_wait.
// A pretend agent streams its five events; two "tools" run concurrently.
#include <uniws/uniws.hpp>

#include <chrono>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

namespace {

// Parameters by value: a lazy coroutine runs after its caller's temporaries are gone.
uniws::task<std::string> run_tool(std::string name, int millis) {
  std::this_thread::sleep_for(std::chrono::milliseconds(millis));
  co_return name + " done";
}

uniws::task<int> agent(std::string user) {
  int seq = 0;
  std::printf("%d agent_started   user=%s\n", ++seq, user.c_str());
  std::printf("%d agent_thinking\n", ++seq);
  std::printf("%d tool_executing  search + fetch\n", ++seq);
  auto [search, fetch] = co_await uniws::when_all(run_tool("search", 5), run_tool("fetch", 5));
  std::printf("%d tool_completed  %s, %s\n", ++seq, search.c_str(), fetch.c_str());
  std::printf("%d agent_completed\n", ++seq);
  co_return seq;
}

}  // namespace

int main() {
  const int events = uniws::sync_wait(agent("alice"));
  return events == 5 ? 0 : 1;
}
