// clients/js (uniws-client.js) in Node against the real server, on Debian's `ws` package.
//
// Usage: NODE_PATH=/usr/share/nodejs node client_js_node_test.mjs PATH/TO/uniws-golden-path
// 1. A drop mid-run (the admin port's /disconnect, twice): every event of the run once, in order.
// 2. The server restarted under the client: it waits, reconnects, delivers state_lost for the
//    thread (a new epoch: recovered false), and the thread's next run streams.
// 3. A token that expires mid-session: after the drop the server refuses it (401); the provider
//    is asked again ({refused: true}) and the stream goes on, every event once.
// 4. A wrong token: AuthenticationFailed after the provider's second answer, no retry storm (the
//    server counts two refusals).
// 5. 10,000 events of one run to one client, none dropped; events/s printed.
// Rules checked: proto-R1 proto-R2 proto-R3 proto-W1 proto-S2 proto-M3
import { spawn } from "node:child_process";
import { createHmac } from "node:crypto";
import { createRequire } from "node:module";
import { createServer } from "node:net";
import { createInterface } from "node:readline";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const require = createRequire(import.meta.url);
const WebSocket = require("ws");  // Debian's node-ws (NODE_PATH=/usr/share/nodejs)
const here = dirname(fileURLToPath(import.meta.url));
const { UniwsClient, ReconnectPolicy, AuthenticationFailed } = await import(join(here, "..", "..", "clients", "js", "uniws-client.js"));

const SECRET = "client-test-secret-0123456789";
const FAST = new ReconnectPolicy({ initial: 50, maximum: 500 });
const FIVE_AROUND = (steps) => ["agent_started", ...Array(steps).fill("agent_thinking"), "tool_executing", "tool_completed", "agent_completed"];
const failures = [];
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

function check(condition, what) {
  console.log((condition ? "ok    " : "FAIL  ") + what);
  if (!condition) failures.push(what);
  return condition;
}

class Server {
  static async start(binary, args, port = 0) {
    const s = new Server();
    s.process = spawn(binary, ["--port", String(port), "--admin-port", "0", "--jwt-secret", SECRET, ...args],
      { stdio: ["ignore", "pipe", "inherit"] });
    const lines = createInterface({ input: s.process.stdout })[Symbol.asyncIterator]();
    const first = (await lines.next()).value, second = (await lines.next()).value;
    if (!first || !first.startsWith("listening on http://")) throw new Error("server: " + first);
    s.base = first.split(" ")[2];
    s.admin = second.split(" ")[2];
    s.url = s.base.replace("http://", "ws://") + "/ws";
    s.port = Number(s.base.split(":")[2]);
    s.exited = new Promise((r) => s.process.on("exit", r));
    return s;
  }
  async stats() { return (await fetch(this.admin + "/stats")).json(); }
  async disconnect(user) { await fetch(this.admin + "/disconnect?user=" + user, { method: "POST" }); }
  async login(user) {
    const res = await fetch(this.base + "/login", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ user, password: user + "-pw" }),
    });
    return (await res.json()).token;
  }
  async stop() {
    if (this.process.exitCode === null) this.process.kill("SIGTERM");
    await this.exited;
  }
}

function jwt(claims) {
  const part = (o) => Buffer.from(JSON.stringify(o)).toString("base64url");
  const body = part({ alg: "HS256", typ: "JWT" }) + "." + part(claims);
  return body + "." + createHmac("sha256", SECRET).update(body).digest("base64url");
}

/** The thread's agent events until agent_completed (or timeout ms), and the other events. */
async function runEvents(iterator, threadId, { onEvent, timeout = 60000 } = {}) {
  const got = [], others = [];
  const deadline = Date.now() + timeout;
  for (;;) {
    let timer;
    const next = await Promise.race([
      iterator.next(),
      new Promise((r) => { timer = setTimeout(() => r(null), Math.max(0, deadline - Date.now())); }),
    ]).catch((e) => ({ error: e }));
    clearTimeout(timer);
    if (!next || next.done || next.error) return { got, others, error: next && next.error };
    const e = next.value;
    if (e.kind === "agent_event" && e.threadId === threadId) {
      got.push(e);
      if (onEvent) await onEvent(e, got.length);
      if (e.type === "agent_completed") return { got, others };
    } else {
      others.push(e);
    }
  }
}

function exactlyOnce(events, steps, what) {
  const expected = FIVE_AROUND(steps);
  const types = events.map((e) => e.type), seqs = events.map((e) => e.seq);
  check(JSON.stringify(types) === JSON.stringify(expected),
    `${what}: the run's ${expected.length} events, each once, in order (got ${types.length})`);
  check(seqs.length > 0 && seqs.every((s, i) => s === seqs[0] + i), `${what}: seqs consecutive`);
}

async function dropMidRun(server) {
  const client = new UniwsClient(server.url, () => server.login("alice"), { WebSocket, policy: FAST });
  const it = client[Symbol.asyncIterator]();
  client.runAgent("t1", "drop me", { steps: 150 });
  const { got, others } = await runEvents(it, "t1", {
    onEvent: async (e, count) => { if (count === 20 || count === 90) await server.disconnect("alice"); },
  });
  exactlyOnce(got, 150, "drop mid-run");
  check(client.stats.connects === 3 && client.stats.resumes === 2,
    `two drops, two resumes (connects ${client.stats.connects}, resumes ${client.stats.resumes})`);
  check(others.filter((e) => e.kind === "joined" && e.recovered === true).length === 2, "both resumes recovered (R2)");
  check(client.stats.duplicatesDropped === 0, "the server sent nothing twice");
  await client.close();
}

async function serverRestarts(binary) {
  const port = await new Promise((r) => { const s = createServer().listen(0, "127.0.0.1", () => { const p = s.address().port; s.close(() => r(p)); }); });
  let server = await Server.start(binary, ["--agent-delay-ms", "1"], port);
  const token = await server.login("alice");
  const client = new UniwsClient(server.url, () => token, { WebSocket, policy: FAST });
  const it = client[Symbol.asyncIterator]();
  try {
    client.runAgent("t1", "before");
    check((await runEvents(it, "t1")).got.length === 5, "a run before the restart");
    await server.stop();  // 1001 to the client (S2), then nothing listens for a while
    await sleep(1000);
    server = await Server.start(binary, ["--agent-delay-ms", "1"], port);
    let lost = null;
    for (;;) {
      const next = await it.next();
      if (next.done) break;
      if (next.value.kind === "state_lost") { lost = next.value; break; }
    }
    check(lost !== null && lost.threadId === "t1", "after the restart: state_lost for t1 (R3)");
    check(client.stats.failedConnects >= 1, `it waited while the server was down (${client.stats.failedConnects} tries)`);
    client.runAgent("t1", "after");
    exactlyOnce((await runEvents(it, "t1", { timeout: 15000 })).got, 1, "the first run after the restart");
  } finally {
    await client.close();
    await server.stop();
  }
}

async function tokenExpires(server) {
  const minted = Date.now() / 1000;
  const calls = [];
  const tokens = ({ refused }) => {
    calls.push(refused);
    if (calls.length === 1) return jwt({ sub: "carol", exp: Math.floor(minted) - 25 });  // valid 5 s more (30 s leeway)
    return jwt({ sub: "carol", exp: Math.floor(Date.now() / 1000) + 600 });
  };
  const before = (await server.stats()).auth_failures;
  const client = new UniwsClient(server.url, tokens, { WebSocket, policy: FAST });
  const it = client[Symbol.asyncIterator]();
  client.runAgent("t1", "slow", { steps: 300 });
  const { got } = await runEvents(it, "t1", {
    onEvent: async (e, count) => {
      if (count !== 1) return;
      await sleep(Math.max(0, (minted + 6.5) * 1000 - Date.now()));  // the first token is now refused
      await server.disconnect("carol");
    },
  });
  exactlyOnce(got, 300, "expired token");
  check(JSON.stringify(calls) === "[false,true]", `the provider was asked again after the 401, told so (${JSON.stringify(calls)})`);
  check((await server.stats()).auth_failures - before === 1, "one refusal: the expired token");
  check(client.stats.duplicatesDropped === 0, "nothing twice");
  await client.close();
}

async function wrongToken(server) {
  let calls = 0;
  const before = (await server.stats()).auth_failures;
  const client = new UniwsClient(server.url, () => { calls += 1; return "forged.token.value"; }, { WebSocket, policy: FAST });
  const error = await client.closed;
  check(error instanceof AuthenticationFailed && /401/.test(error.message), `a wrong token: AuthenticationFailed, ${error}`);
  let thrown = null;
  try { for await (const _ of client) { /* the events before the end */ } } catch (e) { thrown = e; }
  check(thrown === error, "the iterator ends with the same error");
  await sleep(1000);  // a storm would go on meanwhile
  check(calls === 2, `the provider asked twice, no more (${calls})`);
  check((await server.stats()).auth_failures - before === 2, "the server refused two upgrades, no storm");
}

async function manyEvents(server) {
  const client = new UniwsClient(server.url, () => server.login("bob"), { WebSocket, policy: FAST });
  const it = client[Symbol.asyncIterator]();
  const droppedBefore = (await server.stats()).messages_dropped;
  const started = Date.now();
  client.runAgent("big", "ten thousand", { steps: 9996 });
  const { got } = await runEvents(it, "big", { timeout: 120000 });
  const seconds = (Date.now() - started) / 1000;
  exactlyOnce(got, 9996, "10,000 events");
  check((await server.stats()).messages_dropped === droppedBefore, "the server dropped none");
  console.log(`client_js_node: 10,000 events in ${seconds.toFixed(2)} s, ${Math.round(got.length / seconds)} events/s`);
  await client.close();
}

const binary = process.argv[2];
const server = await Server.start(binary, ["--agent-delay-ms", "2"]);
try {
  await dropMidRun(server);
  const slow = await Server.start(binary, ["--agent-delay-ms", "30"]);  // a run of 9 s: it outlives the token
  try { await tokenExpires(slow); } finally { await slow.stop(); }
  await wrongToken(server);
  const fast = await Server.start(binary, ["--agent-delay-ms", "0"]);
  try { await manyEvents(fast); } finally { await fast.stop(); }
} finally {
  await server.stop();
}
await serverRestarts(binary);
console.log(`client_js_node: ${failures.length} failed checks`);
process.exit(failures.length ? 1 : 0);
