#include "jthread.hpp"
#include <uniws/sync_wait.hpp>
#include <uniws/task.hpp>

#include <catch2/catch.hpp>

#include <atomic>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace {

long live_frames() { return uniws::detail::frame_stats::live_frames.load(); }

// Resumes the awaiting coroutine on a new thread, so code after the co_await runs there.
class resume_on_new_thread {
 public:
  explicit resume_on_new_thread(std::vector<uniws_test::jthread>& threads) : threads_(&threads) {}
  bool await_ready() const noexcept { return false; }
  void await_suspend(std::coroutine_handle<> h) {
    threads_->emplace_back([h] { h.resume(); });
  }
  void await_resume() const noexcept {}

 private:
  std::vector<uniws_test::jthread>* threads_;
};

struct destruction_counter {
  explicit destruction_counter(int* count) : count_(count) {}
  destruction_counter(destruction_counter&& o) noexcept : count_(std::exchange(o.count_, nullptr)) {}
  destruction_counter& operator=(destruction_counter&&) = delete;
  ~destruction_counter() {
    if (count_) ++*count_;
  }

 private:
  int* count_;
};

uniws::task<int> forty_two() { co_return 42; }

}  // namespace

TEST_CASE("a task is lazy: its body runs only when awaited") {
  bool ran = false;
  auto body = [](bool* flag) -> uniws::task<int> {
    *flag = true;
    co_return 7;
  };
  auto t = body(&ran);
  CHECK_FALSE(ran);
  CHECK_FALSE(t.is_ready());
  CHECK(uniws::sync_wait(std::move(t)) == 7);
  CHECK(ran);
}

TEST_CASE("task<T> yields values, void, references and move-only results") {
  SECTION("value") { CHECK(uniws::sync_wait(forty_two()) == 42); }

  SECTION("void") {
    int hits = 0;
    auto body = [](int* h) -> uniws::task<> {
      ++*h;
      co_return;
    };
    uniws::sync_wait(body(&hits));
    CHECK(hits == 1);
  }

  SECTION("reference refers to the original object") {
    int target = 1;
    auto body = [](int* p) -> uniws::task<int&> { co_return *p; };
    int& r = uniws::sync_wait(body(&target));
    r = 99;
    CHECK(target == 99);
    CHECK(&r == &target);
  }

  SECTION("move-only") {
    auto body = []() -> uniws::task<std::unique_ptr<std::string>> {
      co_return std::make_unique<std::string>("moved");
    };
    std::unique_ptr<std::string> p = uniws::sync_wait(body());
    REQUIRE(p);
    CHECK(*p == "moved");
  }

  SECTION("awaiting an lvalue task gives a reference into it; an rvalue task moves out") {
    auto outer = []() -> uniws::task<std::string> {
      auto inner = []() -> uniws::task<std::string> { co_return std::string(100, 'x'); }();
      std::string& in_place = co_await inner;
      in_place += "y";
      std::string again = co_await inner;  // a finished task can be awaited again as an lvalue
      co_return again;
    };
    CHECK(uniws::sync_wait(outer()) == std::string(100, 'x') + "y");
  }
}

TEST_CASE("an exception thrown three levels down reaches the outermost awaiter") {
  auto level3 = []() -> uniws::task<int> {
    throw std::runtime_error("level 3 failed");
    co_return 0;
  };
  auto level2 = [level3]() -> uniws::task<int> { co_return co_await level3() + 1; };
  auto level1 = [level2]() -> uniws::task<int> {
    int v = co_await level2();
    FAIL("level 1 must not continue after level 2 threw");
    co_return v;
  };
  CHECK_THROWS_WITH(uniws::sync_wait(level1()), "level 3 failed");
}

TEST_CASE("an exception can be caught by the awaiting coroutine") {
  auto failing = []() -> uniws::task<> {
    throw std::logic_error("boom");
    co_return;
  };
  auto catching = [failing]() -> uniws::task<std::string> {
    try {
      co_await failing();
    } catch (const std::logic_error& e) {
      co_return std::string("caught ") + e.what();
    }
    co_return "not caught";
  };
  CHECK(uniws::sync_wait(catching()) == "caught boom");
}

TEST_CASE("a task resumed on another thread completes there and sync_wait waits for it") {
  std::vector<uniws_test::jthread> threads;
  const auto caller = std::this_thread::get_id();
  auto body = [](std::vector<uniws_test::jthread>* ts) -> uniws::task<std::thread::id> {
    co_await resume_on_new_thread(*ts);
    co_return std::this_thread::get_id();
  };
  const std::thread::id finished_on = uniws::sync_wait(body(&threads));
  CHECK(finished_on != caller);
  CHECK(threads.size() == 1);
}

TEST_CASE("frames never leak") {
  const long before = live_frames();

  SECTION("a task destroyed without being awaited frees its frame and its parameters") {
    int destroyed = 0;
    {
      auto body = [](destruction_counter) -> uniws::task<int> { co_return 1; };
      // Held in a vector so the frame escapes (clang may otherwise elide its heap allocation).
      std::vector<uniws::task<int>> held;
      held.push_back(body(destruction_counter(&destroyed)));
      CHECK(live_frames() == before + 1);
      CHECK(destroyed == 0);  // the argument was moved into the frame; the frame still holds it
    }
    CHECK(destroyed == 1);
    CHECK(live_frames() == before);
  }

  SECTION("awaited tasks, thrown exceptions and moved-from tasks") {
    auto thrower = []() -> uniws::task<int> {
      throw std::runtime_error("x");
      co_return 1;
    };
    auto outer = [thrower]() -> uniws::task<int> {
      int sum = 0;
      for (int i = 0; i < 100; ++i) sum += co_await forty_two();
      try {
        co_await thrower();
      } catch (const std::runtime_error&) {
        ++sum;
      }
      uniws::task<int> a = forty_two();
      uniws::task<int> b = std::move(a);
      a = std::move(b);
      sum += co_await std::move(a);
      co_return sum;
    };
    CHECK(uniws::sync_wait(outer()) == 100 * 42 + 1 + 42);
    CHECK(live_frames() == before);
  }
}

TEST_CASE("a frame freed on another thread than the one that allocated it") {
  const long frames_before = live_frames();
  const long blocks_before = uniws::detail::frame_stats::system_blocks.load();
  {
    std::vector<uniws::task<int>> made_here;
    for (int i = 0; i < 1000; ++i) made_here.push_back(forty_two());
    uniws_test::jthread other([&made_here] {
      // Run half there and destroy all there: those frames join that thread's free lists,
      // which are given back to the system when it exits.
      for (std::size_t i = 0; i < made_here.size(); i += 2)
        CHECK(uniws::sync_wait(std::move(made_here[i])) == 42);
      made_here.clear();
      for (int i = 0; i < 1000; ++i) CHECK(uniws::sync_wait(forty_two()) == 42);  // reuses them
    });
  }
  CHECK(live_frames() == frames_before);
  // The other thread's cached blocks went back to the system at its exit.
  CHECK(uniws::detail::frame_stats::system_blocks.load() <= blocks_before + 1000);
  // Frames allocated here afterwards still work (this thread's lists are intact).
  CHECK(uniws::sync_wait(forty_two()) == 42);
  CHECK(live_frames() == frames_before);
}

#if defined(UNIWS_TEST_DEEP_CHAIN)
namespace {
uniws::task<long> chain(long depth) {
  if (depth == 0) co_return 0;
  co_return 1 + co_await chain(depth - 1);
}
}  // namespace

TEST_CASE("a 1,000,000-deep synchronous co_await chain does not overflow the stack") {
  // Each level completes synchronously; without symmetric transfer this recursion would
  // need ~1,000,000 nested resume() calls on the stack (far more than 8 MiB).
  CHECK(uniws::sync_wait(chain(1'000'000)) == 1'000'000);
}
#endif
