#include "jthread.hpp"
#include <uniws/sync_wait.hpp>
#include <uniws/task.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <string>
#include <thread>
#include <tuple>
#include <variant>
#include <vector>

namespace {

long live_frames() { return uniws::detail::frame_stats::live_frames.load(); }

// Completes on a fresh thread after a delay: a child that finishes asynchronously.
class complete_later {
 public:
  complete_later(std::vector<uniws_test::jthread>& threads, std::chrono::milliseconds delay)
      : threads_(&threads), delay_(delay) {}
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h) {
    threads_->emplace_back([h, d = delay_] {
      std::this_thread::sleep_for(d);
      h.resume();
    });
  }
  void await_resume() const noexcept {}

 private:
  std::vector<uniws_test::jthread>* threads_;
  std::chrono::milliseconds delay_;
};

// A third-party awaitable that is not a uniws::task.
struct ready_value {
  int value;
  bool await_ready() const noexcept { return true; }
  void await_suspend(std::coroutine_handle<>) const noexcept {}
  int await_resume() const noexcept { return value; }
};

}  // namespace

TEST_CASE("sync_wait drives any awaitable, not only tasks") {
  CHECK(uniws::sync_wait(ready_value{5}) == 5);
  ready_value lvalue{6};
  CHECK(uniws::sync_wait(lvalue) == 6);
}

TEST_CASE("sync_wait blocks until a task that completes on another thread is done") {
  std::vector<uniws_test::jthread> threads;
  std::atomic<bool> finished{false};
  auto body = [](std::vector<uniws_test::jthread>* ts, std::atomic<bool>* done) -> uniws::task<int> {
    co_await complete_later(*ts, std::chrono::milliseconds(20));
    done->store(true);
    co_return 3;
  };
  CHECK(uniws::sync_wait(body(&threads, &finished)) == 3);
  CHECK(finished.load());
}

TEST_CASE("sync_wait rethrows") {
  auto body = []() -> uniws::task<> {
    throw std::out_of_range("nope");
    co_return;
  };
  CHECK_THROWS_AS(uniws::sync_wait(body()), std::out_of_range);
}

TEST_CASE("when_all (variadic) yields every result, void as monostate") {
  auto number = [](int v) -> uniws::task<int> { co_return v; };
  auto text = []() -> uniws::task<std::string> { co_return "text"; };
  auto nothing = [](int* hits) -> uniws::task<> {
    ++*hits;
    co_return;
  };
  int hits = 0;
  auto [a, b, c, d] = uniws::sync_wait(uniws::when_all(number(1), text(), nothing(&hits), ready_value{9}));
  CHECK(a == 1);
  CHECK(b == "text");
  CHECK(std::is_same_v<decltype(c), std::monostate>);
  CHECK(d == 9);
  CHECK(hits == 1);
}

TEST_CASE("when_all runs its children concurrently and resumes once the last finishes") {
  std::vector<uniws_test::jthread> threads;
  threads.reserve(8);
  std::atomic<int> finished{0};
  auto child = [](std::vector<uniws_test::jthread>* ts, std::atomic<int>* count, int ms) -> uniws::task<int> {
    co_await complete_later(*ts, std::chrono::milliseconds(ms));
    count->fetch_add(1);
    co_return ms;
  };
  // Children suspend before any of them finishes: all four were started before the first
  // completion, which proves they ran concurrently rather than one after another.
  auto [a, b, c, d] =
      uniws::sync_wait(uniws::when_all(child(&threads, &finished, 40), child(&threads, &finished, 10),
                                       child(&threads, &finished, 30), child(&threads, &finished, 20)));
  CHECK(threads.size() == 4);
  CHECK(finished.load() == 4);
  CHECK(std::tuple{a, b, c, d} == std::tuple{40, 10, 30, 20});
}

TEST_CASE("when_all with one failing child rethrows after every child has finished") {
  const long before = live_frames();
  std::vector<uniws_test::jthread> threads;
  threads.reserve(8);
  std::atomic<int> finished{0};
  auto ok = [](std::vector<uniws_test::jthread>* ts, std::atomic<int>* count) -> uniws::task<int> {
    co_await complete_later(*ts, std::chrono::milliseconds(10));
    count->fetch_add(1);
    co_return 1;
  };
  auto failing = [](std::atomic<int>* count) -> uniws::task<int> {
    count->fetch_add(1);
    throw std::runtime_error("child 2 failed");
    co_return 0;
  };
  CHECK_THROWS_WITH(
      uniws::sync_wait(uniws::when_all(ok(&threads, &finished), failing(&finished), ok(&threads, &finished))),
      "child 2 failed");
  CHECK(finished.load() == 3);
  CHECK(live_frames() == before);
}

TEST_CASE("when_all over a vector of tasks") {
  const long before = live_frames();
  auto square = [](int v) -> uniws::task<int> { co_return v* v; };

  SECTION("results in input order") {
    std::vector<uniws::task<int>> tasks;
    for (int i = 0; i < 100; ++i) tasks.push_back(square(i));
    std::vector<int> results = uniws::sync_wait(uniws::when_all(std::move(tasks)));
    REQUIRE(results.size() == 100);
    for (int i = 0; i < 100; ++i) CHECK(results[static_cast<std::size_t>(i)] == i * i);
  }

  SECTION("empty range completes at once") {
    CHECK(uniws::sync_wait(uniws::when_all(std::vector<uniws::task<int>>{})).empty());
  }

  SECTION("void tasks, one failing") {
    int ran = 0;
    auto step = [](int* count, bool fail) -> uniws::task<> {
      ++*count;
      if (fail) throw std::invalid_argument("bad step");
      co_return;
    };
    std::vector<uniws::task<>> tasks;
    for (int i = 0; i < 10; ++i) tasks.push_back(step(&ran, i == 6));
    CHECK_THROWS_AS(uniws::sync_wait(uniws::when_all(std::move(tasks))), std::invalid_argument);
    CHECK(ran == 10);
  }

  SECTION("reference results") {
    std::vector<int> storage{1, 2, 3};
    auto element = [](std::vector<int>* v, std::size_t i) -> uniws::task<int&> { co_return (*v)[i]; };
    std::vector<uniws::task<int&>> tasks;
    for (std::size_t i = 0; i < storage.size(); ++i) tasks.push_back(element(&storage, i));
    auto refs = uniws::sync_wait(uniws::when_all(std::move(tasks)));
    refs[1].get() = 20;
    CHECK(storage[1] == 20);
  }
  CHECK(live_frames() == before);
}
