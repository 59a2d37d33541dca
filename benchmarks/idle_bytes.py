#!/usr/bin/python3
"""Where an idle connection's bytes go: uniws-golden-path under heaptrack holds N authenticated,
joined, idle connections (uniws-load --mode idle) and is killed while it holds them, so that what
heaptrack reports as never freed is exactly what the server held then; split by allocation site
into bytes per connection.

  benchmarks/idle_bytes.py --bin-dir build/gcc [--users 1000 --per-user 10] [--json FILE]

Needs heaptrack (Debian: heaptrack). Sizes are what the program asked malloc for; RSS adds
malloc's own headers and free space (run_e2e.py's idle section measures RSS). Asio recycles a
handler's memory block for the next operation of the same thread, so a pending read's block may
be counted where it was first allocated (an HTTP read, say): the rows from Asio's handler memory
are one row, "pending operations".
"""
import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

UNITS = {"B": 1, "K": 1e3, "M": 1e6, "G": 1e9}  # heaptrack_print's units are powers of 1000

# What each allocating function is; the first one that matches the site (the function that called
# malloc) or a frame of its biggest caller path names the row. None: a fixed cost (the users file,
# OpenSSL's start-up), left out.
NAMES = [
    (r"thread_info_base::allocate", "pending operations (Asio's handler memory: the read, its handlers)"),
    (r"basic_websocket_connection<>::(create|private_tag)",
     "the connection (uniws::asio::basic_websocket_connection, its session inside) and its count"),
    (r"epoll_reactor::register_descriptor", "Asio's descriptor state (epoll registration, op queues)"),
    (r"basic_websocket_connection<>::on_readable", "the pending wait for readability (Asio's operation, its handler)"),
    (r"user_registry<>::.*get_or_create", "the user's manager and its registry entry (per user)"),
    (r"send_queue::push_back", "the send queue's ring, kept after the last write"),
    (r"add_to_thread", "the thread's membership (manager)"),
    (r"add_connection", "the manager's roster entry"),
    (r"vector<>::reserve", "a vector's storage (manager)"),
    (r"wait_handler<>::do_complete", "the stall sweep's list (a round was under way)"),
    (r"epoll_reactor::schedule_timer", "Asio's timer heap (a slot per pending timer)"),
    # Fixed costs, whatever the number of connections: not counted.
    (r"user_directory|CRYPTO_|OPENSSL_|make_key", None),
]


def parse_size(text):
    return float(text[:-1]) * UNITS[text[-1]] if text[-1] in UNITS else float(text)


def held_sites(report):
    """[(bytes, calls, site, caller path)] from heaptrack_print's MEMORY LEAKS."""
    sites = []
    lines = report.splitlines()
    i = next((n for n, l in enumerate(lines) if l.startswith("MEMORY LEAKS")), len(lines))
    while i < len(lines):
        m = re.match(r"^(\S+) leaked over (\d+) calls from$", lines[i])
        if not m:
            if lines[i].startswith(("total runtime", "total memory leaked")):
                break
            i += 1
            continue
        site = lines[i + 1].strip()
        path = []
        j = i + 2
        while j < len(lines) and not re.match(r"^\S+ leaked over \d+ calls from$", lines[j]) and lines[j].strip():
            l = lines[j].strip()
            if not l.startswith("in ") and "leaked over" not in l and not l.startswith("and "):
                path.append(l)
            j += 1
        sites.append((parse_size(m.group(1)), int(m.group(2)), site, path))
        i = j
    return sites


def name_of(site, path):
    for pattern, name in NAMES:
        if re.search(pattern, site):
            return name
    for frame in path:
        for pattern, name in NAMES:
            if re.search(pattern, frame):
                return name
    return re.sub(r"\(.*", "", site)[:80]


def kill_all(executable):
    """SIGKILL to every process running `executable`."""
    real = os.path.realpath(executable)
    for pid in os.listdir("/proc"):
        try:
            if pid.isdigit() and os.path.realpath(f"/proc/{pid}/exe") == real:
                os.kill(int(pid), signal.SIGKILL)
        except OSError:
            pass


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin-dir", required=True)
    ap.add_argument("--users", type=int, default=1000)
    ap.add_argument("--per-user", type=int, default=10)
    ap.add_argument("--json")
    a = ap.parse_args()
    connections = a.users * a.per_user
    server = os.path.join(a.bin_dir, "examples", "uniws-golden-path")
    load = os.path.join(a.bin_dir, "benchmarks", "uniws-load")
    work = tempfile.mkdtemp(prefix="uniws-idle-bytes-")
    users = os.path.join(work, "users")
    with open(users, "w") as f:
        for i in range(a.users):
            f.write(f"u{i}:pw-{i}\n")
    data = os.path.join(work, "heap")
    # heaptrack is a script that runs the server with its preload library and a separate
    # interpreter writing the data; the server is the process whose executable is `server`.
    wrapper = subprocess.Popen(["heaptrack", "-o", data, server, "--port", "0", "--address", "127.0.0.1",
                                "--users", users, "--max-connections", str(connections + 100),
                                "--max-connections-per-user", str(a.per_user)],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    holder = None
    try:
        port = None
        for line in wrapper.stdout:
            m = re.match(r"listening on http://127\.0\.0\.1:(\d+)", line)
            if m:
                port = m.group(1)
                break
        if not port:
            sys.exit("the server did not start under heaptrack")
        holder = subprocess.Popen([load, "--port", port, "--mode", "idle", "--users", str(a.users),
                                   "--connections", str(a.per_user), "--seconds", "60"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        ready = holder.stdout.readline()
        if not ready.startswith("ready"):
            sys.exit(f"uniws-load said {ready!r}: {holder.stderr.read().strip()}")
        time.sleep(4)  # at rest: past the stall sweep's first round over the new connections
    finally:
        kill_all(server)  # what it holds now is what heaptrack calls leaked
        wrapper.wait(timeout=60)
        if holder:
            holder.kill()
            holder.wait()
    for _ in range(120):  # the interpreter finishes the file once the server's pipe closes
        if os.path.exists(data + ".zst") and subprocess.run(["pgrep", "-f", "heaptrack_interpret"],
                                                             capture_output=True).returncode != 0:
            break
        time.sleep(0.5)
    report = subprocess.run(["heaptrack_print", "-p", "0", "-a", "0", "-T", "0", "-l", "1", "-n", "60", "-s", "1",
                             data + ".zst"], capture_output=True, text=True, check=True).stdout
    shutil.rmtree(work)
    rows = {}
    for size, calls, site, path in held_sites(report):
        if size / connections < 1 or (calls < connections // 10 and size / connections < 8):
            continue  # crumbs
        name = name_of(site, path)
        if name is None:
            continue
        rows[name] = rows.get(name, 0.0) + size / connections
    total = sum(rows.values())
    # Every connection holds these: missing, the report was not read right (or not written).
    for must in ("the connection (uniws::asio::basic_websocket_connection, its session inside) and its count",
                 "Asio's descriptor state (epoll registration, op queues)",
                 "the pending wait for readability (Asio's operation, its handler)"):
        if rows.get(must, 0) < 16:
            sys.exit(f"no bytes found for {must!r}: heaptrack_print's report was not understood")
    print(f"{connections} idle joined connections ({a.users} users x {a.per_user}): the bytes per "
          f"connection the server held, by what holds them\n")
    print("| bytes per connection | what |\n|---|---|")
    for name, per in sorted(rows.items(), key=lambda kv: -kv[1]):
        print(f"| {per:.0f} | {name} |")
    print(f"| **{total:.0f}** | **all of the above** |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"connections": connections, "users": a.users, "bytes_per_connection": rows,
                       "total_bytes_per_connection": total}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
