#!/usr/bin/python3
"""uniws/prometheus.hpp's output, read back by Debian's python3-prometheus-client.

Usage: prometheus_parse_test.py PATH/TO/prometheus_render
Rules checked: proto-M1 (the format)
"""
import os
import subprocess
import sys

from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from checks import check, failures  # noqa: E402

text = subprocess.run([sys.argv[1]], check=True, capture_output=True, text=True).stdout
families = {f.name: f for f in text_string_to_metric_families(text)}


# The manager's list, in its order; prometheus_render sets field i to 1000 + i.
manager_fields = ["connections", "threads", "messages_sent", "bytes_sent", "messages_dropped",
                  "connections_closed_slow", "sends_to_closed", "events_emitted", "runs_started",
                  "unavailable_reports", "events_published", "publish_failures", "restamped"]
gauges = {"connections", "threads"}
for i, field in enumerate(manager_fields):
    family = families.get("uniws_" + field)
    kind = "gauge" if field in gauges else "counter"
    sample = "uniws_" + field + ("" if kind == "gauge" else "_total")
    check(family is not None and family.type == kind, f"{sample} is a {kind}")
    if family:
        check([(s.name, s.value) for s in family.samples if not s.name.endswith("_created")] == [(sample, 1000 + i)],
              f"{sample} = {1000 + i}")
        check(family.documentation != "", f"{sample} has help text")

esc = families["uniws_escapes"]
check(esc.type == "counter", "a counter with labels")
check(esc.documentation == "a help with a backslash \\ and a\nnewline", "help text escapes read back exactly")
check(esc.samples[0].labels == {"path": 'a"b\\c\nd', "shard": "0"}, "label values escape and read back exactly")
check(esc.samples[0].value == 7, "its value")
check(families["uniws_plain"].type == "gauge" and families["uniws_plain"].samples[0].value == 3, "a gauge")

h = families["uniws_delivery_seconds"]
check(h.type == "histogram", "uniws_delivery_seconds is a histogram")
buckets = [(float(s.labels["le"]), s.value) for s in h.samples if s.name.endswith("_bucket")]
check(buckets == sorted(buckets), "buckets ascend")
check(all(a[1] <= b[1] for a, b in zip(buckets, buckets[1:])), "bucket counts are cumulative")
le = dict(buckets)
check(le[0.00005] == 2, "50 us bucket holds 10 us and exactly 50 us")
check(le[0.0001] == 3, "100 us bucket adds 51 us")
check(le[0.001] == 4 and le[0.0025] == 4 and le[0.005] == 6, "1 ms, then two of 3 ms")
check(le[10.0] == 6 and le[float("inf")] == 7, "20 s lands only in +Inf")
count = [s.value for s in h.samples if s.name.endswith("_count")]
total = [s.value for s in h.samples if s.name.endswith("_sum")]
check(count == [7], "_count")
check(len(total) == 1 and abs(total[0] - (10e-6 + 50e-6 + 51e-6 + 1e-3 + 6e-3 + 20)) < 1e-9, "_sum in seconds")

print(f"prometheus_parse_test: {len(failures)} failed checks")
sys.exit(1 if failures else 0)
