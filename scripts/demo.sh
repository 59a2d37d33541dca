#!/usr/bin/env bash
# The demo, end to end: installs what is missing, builds the golden-path server and client,
# starts the server on a free port, runs the client against it (log in, open a WebSocket,
# run an agent, print its five events as they arrive), and stops the server. Run from a
# terminal, it first waits for Enter so you can open the demo page in a browser.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cmake --preset quick >/dev/null
cmake --build --preset quick --target uniws-golden-path uniws-golden-path-client

log=$(mktemp)
./build/quick/examples/uniws-golden-path --port 0 --agent-delay-ms 150 >"$log" 2>&1 &
server=$!
trap 'kill -TERM $server 2>/dev/null || true; rm -f "$log"' EXIT
for _ in $(seq 100); do
  grep -q '^listening on ' "$log" && break
  sleep 0.1
done
head -n 1 "$log"
port=$(head -n 1 "$log" | sed -n 's/^listening on http:\/\/127\.0\.0\.1:\([0-9]*\)$/\1/p')
[ -n "$port" ] || { echo "demo: the server did not start"; cat "$log"; exit 1; }

./build/quick/examples/uniws-golden-path-client --port "$port" --user alice --password alice-pw \
  --thread t1 --message "What is uniws?" --drop-after 2

if [ -t 0 ]; then
  echo
  echo "The same in a browser: open http://127.0.0.1:${port}/ and press 'Run an agent'."
  read -r -p "Press Enter to stop the server. " _
fi
kill -TERM $server
wait $server && echo "server stopped (SIGTERM, exit 0)"
