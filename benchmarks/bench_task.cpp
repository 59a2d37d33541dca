// uniws_bench_task: the cost of creating and awaiting one coroutine, uniws::task against
// boost::asio::awaitable, with a plain function call as the floor.
#include "alloc_counter.hpp"
#include "ratio_reporter.hpp"

#include <uniws/sync_wait.hpp>
#include <uniws/task.hpp>

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/detached.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/use_awaitable.hpp>

#include <benchmark/benchmark.h>

namespace asio = boost::asio;

namespace {

void report_allocations(benchmark::State& state, long before) {
  state.counters["allocs_per_op"] = benchmark::Counter(
      static_cast<double>(uniws_bench::heap_allocations.load() - before), benchmark::Counter::kAvgIterations);
}

[[gnu::noinline]] int plain_leaf(int v) {
  benchmark::ClobberMemory();
  return v;
}

void plain_call(benchmark::State& state) {
  const long before = uniws_bench::heap_allocations.load();
  long sum = 0;
  for (auto _ : state) sum += plain_leaf(1);
  benchmark::DoNotOptimize(sum);
  report_allocations(state, before);
}

[[gnu::noinline]] asio::awaitable<int> asio_leaf(int v) { co_return v; }

void asio_awaitable(benchmark::State& state) {
  asio::io_context io;
  const long before = uniws_bench::heap_allocations.load();
  asio::co_spawn(
      io,
      [&state]() -> asio::awaitable<void> {
        long sum = 0;
        for (auto _ : state) sum += co_await asio_leaf(1);
        benchmark::DoNotOptimize(sum);
      },
      asio::detached);
  io.run();
  report_allocations(state, before);
}

[[gnu::noinline]] uniws::task<int> uniws_leaf(int v) { co_return v; }

uniws::task<long> uniws_loop(benchmark::State* state) {
  long sum = 0;
  for (auto _ : *state) sum += co_await uniws_leaf(1);
  co_return sum;
}

void uniws_task(benchmark::State& state) {
  const long before = uniws_bench::heap_allocations.load();
  benchmark::DoNotOptimize(uniws::sync_wait(uniws_loop(&state)));
  report_allocations(state, before);
}

}  // namespace

BENCHMARK(plain_call);
BENCHMARK(asio_awaitable);
BENCHMARK(uniws_task);

int main(int argc, char** argv) { return uniws_bench::run_with_ratios(argc, argv, {"asio_awaitable"}); }
