// benchmarks/ratio_reporter.hpp - prints Google Benchmark's table, then each case's ratio to
// baselines measured in the same run (absolute times drift on a noisy machine; ratios hold).
//
// A case is named "<implementation>/<workload...>"; cases with the same workload are compared
// with the baseline implementation's case for that workload. Throughput (items_per_second)
// is compared when reported, otherwise time per iteration.
#pragma once

#include <benchmark/benchmark.h>

#include <cstdio>
#include <map>
#include <string>
#include <utility>
#include <vector>

namespace uniws_bench {

class ratio_reporter : public benchmark::ConsoleReporter {
 public:
  explicit ratio_reporter(std::vector<std::string> baselines) : baselines_(std::move(baselines)) {}

  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& run : runs) {
      if (run.error_occurred) continue;
      // With --benchmark_repetitions the median stands for the case; otherwise each run does.
      if (run.run_type == Run::RT_Aggregate ? run.aggregate_name != "median" : run.repetitions > 1) continue;
      const std::string name = run.run_name.str();
      const auto slash = name.find('/');
      const std::string impl = name.substr(0, slash);
      const std::string workload = slash == std::string::npos ? "" : name.substr(slash + 1);
      measurement m;
      m.ns_per_op = run.GetAdjustedRealTime();
      if (auto it = run.counters.find("items_per_second"); it != run.counters.end())
        m.items_per_second = it->second;
      results_.push_back({impl, workload, m});
    }
  }

  void Finalize() override {
    ConsoleReporter::Finalize();
    for (const std::string& baseline : baselines_) print_ratios(baseline);
    std::fflush(stdout);
  }

 private:
  void print_ratios(const std::string& baseline) const {
    std::map<std::string, measurement> base;
    for (const auto& r : results_)
      if (r.impl == baseline) base[r.workload] = r.m;
    if (base.empty()) return;
    std::printf("\nratio to %s (same run; > 1 means faster than %s)\n", baseline.c_str(), baseline.c_str());
    for (const auto& r : results_) {
      auto it = base.find(r.workload);
      if (it == base.end() || r.impl == baseline) continue;
      const double ratio = (r.m.items_per_second > 0 && it->second.items_per_second > 0)
                               ? r.m.items_per_second / it->second.items_per_second
                               : it->second.ns_per_op / r.m.ns_per_op;
      std::printf("  %-22s %-40s %7.2fx\n", r.impl.c_str(), r.workload.empty() ? "-" : r.workload.c_str(),
                  ratio);
    }
  }

  struct measurement {
    double ns_per_op = 0;
    double items_per_second = 0;
  };
  struct result {
    std::string impl;
    std::string workload;
    measurement m;
  };
  std::vector<std::string> baselines_;
  std::vector<result> results_;
};

/// main() body shared by the benchmark binaries.
inline int run_with_ratios(int argc, char** argv, std::vector<std::string> baselines) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  ratio_reporter reporter(std::move(baselines));
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  return 0;
}

}  // namespace uniws_bench
