// uniws/asio/detail/loop_pass.hpp - connections whose writes wait for the end of this pass of the
// event loop, then go out each with one gathered write: what a run emits in one pass (a whole
// burst, or one paced event to every connection of its user) costs each connection one system
// call, and no event waits longer than the rest of the pass.
//
// A pass ends when a handler posted during it runs, after the handlers that were ready before
// it. One such handler is posted per pass, not one per connection. The list is the thread's;
// on an executor run by several threads (strands of a pool) the handler may run on another
// thread, so the list is shared with it under a mutex (uncontended otherwise), and each
// connection checks that it is on its own executor before it writes.
#pragma once

#include <boost/asio/post.hpp>

#include <memory>
#include <mutex>
#include <utility>
#include <vector>

namespace uniws::asio::detail {

class loop_pass {
 public:
  /// Calls `flush(owner)` when this pass of the loop ends; the handler that ends it is posted to
  /// `executor` if none is posted yet.
  template <class Executor>
  static void flush_at_end(const Executor& executor, std::shared_ptr<void> owner, void (*flush)(void*)) {
    const std::shared_ptr<corked>& here = this_thread();
    std::lock_guard lock(here->mutex);
    here->waiting.push_back({std::move(owner), flush});
    if (here->end_posted) return;
    here->end_posted = true;
    boost::asio::post(executor, pass_end{here});
  }

 private:
  struct entry {
    std::shared_ptr<void> owner;
    void (*flush)(void*);
  };
  struct corked {
    std::mutex mutex;
    std::vector<entry> waiting;  ///< this pass's
    std::vector<entry> spare;    ///< the last pass's, emptied: its capacity is reused
    bool end_posted = false;

    void end_pass() {
      std::vector<entry> now;
      {
        std::lock_guard lock(mutex);
        now = std::exchange(waiting, std::move(spare));
        end_posted = false;
      }
      for (const entry& e : now) e.flush(e.owner.get());
      now.clear();
      std::lock_guard lock(mutex);
      spare = std::move(now);
    }

    void abandon() noexcept {
      std::vector<entry> gone;
      std::lock_guard lock(mutex);
      gone.swap(waiting);
      end_posted = false;
    }
  };
  /// The handler that ends a pass. Destroyed without running (its loop stopped), it lets the
  /// connections waiting for it go with it, while their executor still exists.
  struct pass_end {
    std::shared_ptr<corked> list;
    explicit pass_end(std::shared_ptr<corked> l) noexcept : list(std::move(l)) {}
    pass_end(pass_end&&) noexcept = default;
    pass_end& operator=(pass_end&&) = delete;
    ~pass_end() {
      if (list) list->abandon();
    }
    void operator()() { std::exchange(list, nullptr)->end_pass(); }
  };

  static const std::shared_ptr<corked>& this_thread() {
    thread_local const std::shared_ptr<corked> here = std::make_shared<corked>();
    return here;
  }
};

}  // namespace uniws::asio::detail
