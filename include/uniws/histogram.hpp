// uniws/histogram.hpp - a distribution with fixed bucket bounds, recorded lock-free from any
// thread: the delivery latency (an event emitted -> its bytes handed to the socket) and the
// send queue's depth. Values are integers in a unit (nanoseconds, bytes); `scale` turns them
// into the exported unit (seconds, bytes).
#pragma once

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

namespace uniws {

/// A lock-free histogram of values in fixed buckets (latencies in microseconds, sizes in bytes).
class histogram {
 public:
  /// `upper_bounds` ascending, in the recorded unit; a last bucket (+Inf) takes the rest.
  histogram(std::vector<std::uint64_t> upper_bounds, double scale)
      : bounds_(std::move(upper_bounds)),
        scale_(scale),
        counts_(new std::atomic<std::uint64_t>[bounds_.size() + 1]) {
    for (std::size_t i = 0; i <= bounds_.size(); ++i) counts_[i].store(0, std::memory_order_relaxed);
  }

  /// Latencies in nanoseconds, exported in seconds: 50 us to 10 s.
  static histogram latency() {
    return histogram({50'000, 100'000, 250'000, 500'000, 1'000'000, 2'500'000, 5'000'000, 10'000'000,
                      25'000'000, 50'000'000, 100'000'000, 250'000'000, 500'000'000, 1'000'000'000,
                      2'500'000'000, 5'000'000'000, 10'000'000'000},
                     1e-9);
  }

  /// Sizes in bytes: 1 KiB to 64 MiB, by fours.
  static histogram bytes() {
    std::vector<std::uint64_t> b;
    for (std::uint64_t v = 1024; v <= (std::uint64_t{64} << 20); v *= 4) b.push_back(v);
    return histogram(std::move(b), 1.0);
  }

  /// Counts one value.
  void observe(std::uint64_t value) noexcept {
    const auto bucket =
        static_cast<std::size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), value) - bounds_.begin());
    counts_[bucket].fetch_add(1, std::memory_order_relaxed);
    sum_.fetch_add(value, std::memory_order_relaxed);
  }

  /// Counts several values: one atomic add per run of values in the same bucket, and one for
  /// the sum (a batch of messages written together mostly falls in one bucket).
  void observe(std::span<const std::uint64_t> values) noexcept {
    std::size_t run_bucket = 0;
    std::uint64_t run = 0, sum = 0;
    for (const std::uint64_t value : values) {
      const auto bucket =
          static_cast<std::size_t>(std::lower_bound(bounds_.begin(), bounds_.end(), value) - bounds_.begin());
      if (run != 0 && bucket != run_bucket) {
        counts_[run_bucket].fetch_add(run, std::memory_order_relaxed);
        run = 0;
      }
      run_bucket = bucket;
      ++run;
      sum += value;
    }
    if (run != 0) counts_[run_bucket].fetch_add(run, std::memory_order_relaxed);
    if (!values.empty()) sum_.fetch_add(sum, std::memory_order_relaxed);
  }

  /// Counts one duration, in microseconds.
  void observe(std::chrono::steady_clock::duration d) noexcept {
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
    observe(static_cast<std::uint64_t>(ns < 0 ? 0 : ns));
  }

  /// What Prometheus exports: cumulative counts per upper bound (exported unit), the sum, the count.
  struct snapshot {
    std::vector<double> upper_bounds;       ///< the last bucket, +Inf, is `count`
    std::vector<std::uint64_t> cumulative;  ///< one per upper bound
    /// The sum of the values counted, in the exported unit.
    double sum = 0;
    /// How many values were counted.
    std::uint64_t count = 0;
  };

  /// Every bucket, the sum and the count, read now.
  [[nodiscard]] snapshot read() const {
    snapshot s;
    std::uint64_t running = 0;
    for (std::size_t i = 0; i < bounds_.size(); ++i) {
      running += counts_[i].load(std::memory_order_relaxed);
      s.upper_bounds.push_back(static_cast<double>(bounds_[i]) * scale_);
      s.cumulative.push_back(running);
    }
    s.count = running + counts_[bounds_.size()].load(std::memory_order_relaxed);
    s.sum = static_cast<double>(sum_.load(std::memory_order_relaxed)) * scale_;
    return s;
  }

 private:
  std::vector<std::uint64_t> bounds_;
  double scale_;
  std::unique_ptr<std::atomic<std::uint64_t>[]> counts_;
  std::atomic<std::uint64_t> sum_{0};
};

/// What a connection's write loop measures, shared by the connections given it (the Beast
/// adapter, uniws/beast/connection.hpp, records it when each write completes).
struct delivery_metrics {
  histogram delivery_seconds = histogram::latency();  ///< an event emitted -> its frame written out
  histogram queue_bytes = histogram::bytes();         ///< bytes queued when a batch of them is written
};

}  // namespace uniws
