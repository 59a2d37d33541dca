#!/usr/bin/python3
"""The server's and the client's command lines: --help answers on stdout and exits 0; a wrong
flag, a missing value or flags that contradict each other exit 2 with the reason and the usage
on stderr, before anything listens or connects.

Usage: command_line_test.py SERVER CLIENT
"""
import os
import subprocess
import sys

server, client = sys.argv[1:3]
failures = []
asked = 0


def expect(argv, status, stream, *texts):
    global asked
    asked += 1
    r = subprocess.run(argv, capture_output=True, text=True, timeout=20,
                       env={k: v for k, v in os.environ.items() if k != "UNIWS_REDIS_PASSWORD"})
    out = r.stdout if stream == "stdout" else r.stderr
    if r.returncode != status or any(t not in out for t in texts):
        failures.append(f"{argv[1:]}: exit {r.returncode}, {stream} {out[:300]!r}; wanted exit {status} and {texts}")


expect([server, "--help"], 0, "stdout", "usage: uniws-golden-path", "--port")
expect([server, "--no-such-flag", "1"], 2, "stderr", "unknown option --no-such-flag", "usage:")
expect([server, "--port"], 2, "stderr", "--port needs a value")
expect([server, "--jwt-secret", "short"], 2, "stderr", "--jwt-secret must be at least 16 bytes")
expect([server, "--tls-cert", "/nonexistent.pem"], 2, "stderr", "--tls-cert and --tls-key go together")
expect([server, "--redis-password-file", "/nonexistent"], 2, "stderr",
       "--redis-password-file /nonexistent: cannot read a password")
expect([server, "--redis-user", "uniws"], 2, "stderr", "--redis-user needs a password")
expect([client, "--no-such-flag", "1"], 2, "stderr", "unknown option --no-such-flag", "usage:")
expect([client, "--port"], 2, "stderr", "--port needs a value")

for f in failures:
    print("FAIL:", f)
print(f"{asked - len(failures)}/{asked} command lines answered as expected")
sys.exit(1 if failures else 0)
