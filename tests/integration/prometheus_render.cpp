// Prints a known exposition for prometheus_parse_test.py, which reads it back with a parser
// nobody here wrote (python3-prometheus-client) and checks every name, type, label and value.
#include <uniws/histogram.hpp>
#include <uniws/manager.hpp>
#include <uniws/prometheus.hpp>

#include <chrono>
#include <cstdio>
#include <string>

int main() {
  uniws::manager_stats stats;
  const auto fields = uniws::manager_stats::fields();
  for (std::size_t i = 0; i < fields.size(); ++i)
    stats.*fields[i].member = 1000 + i;  // each value tells its field

  uniws::histogram latency = uniws::histogram::latency();
  using namespace std::chrono_literals;
  for (std::chrono::nanoseconds d : {10us, 50us, 51us, 1000us, 3000us, 3000us, 20'000'000us})
    latency.observe(d);

  std::string out;
  uniws::prometheus::text_writer w(out);
  w.stats(stats);
  w.counter("escapes", "a help with a backslash \\ and a\nnewline", 7,
            {{"path", "a\"b\\c\nd"}, {"shard", "0"}});
  w.gauge("plain", "no labels", 3);
  w.histogram("delivery_seconds", "emitted to written", latency.read());
  std::fputs(out.c_str(), stdout);
}
