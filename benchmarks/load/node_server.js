// uniws-load peer: the server a Node.js user would write with the `ws` package (Debian's
// node-ws), speaking the part of docs/protocol.md that uniws-load drives: POST /login (HS256
// JWT), /ws with the token as a Bearer header or ?token=, join / leave / ping / run_agent with
// steps and pad, the five events with a per-user seq, joined answers. One process, one thread.
//
// Written as a competent Node user would: connections indexed by user and thread (a Map of
// Sets), one JSON.stringify per event shared by every send, ws's own framing, no per-send
// allocation beyond what ws does. No history, no limits: what it lacks, uniws pays for.
//
//   NODE_PATH=/usr/share/nodejs node node_server.js --port 0 --users FILE [--agent-delay-ms N]
// Unknown flags (--threads, --history-events, ...) are accepted and ignored.
'use strict';
const http = require('http');
const crypto = require('crypto');
const fs = require('fs');
const { WebSocketServer } = require('ws');

const flags = {};
for (let i = 2; i + 1 < process.argv.length; i += 2) flags[process.argv[i]] = process.argv[i + 1];
const port = Number(flags['--port'] || 8080);
const address = flags['--address'] || '127.0.0.1';
const agentDelay = Number(flags['--agent-delay-ms'] ?? 50);
// With --agent-burst 1 and no delay, a run is emitted without yielding to the event loop.
const agentBurst = flags['--agent-burst'] === '1';
const secret = flags['--jwt-secret'] || crypto.randomBytes(32).toString('hex');
const users = new Map([['alice', 'alice-pw'], ['bob', 'bob-pw']]);
if (flags['--users']) {
  users.clear();
  for (const line of fs.readFileSync(flags['--users'], 'utf8').split('\n')) {
    const at = line.indexOf(':');
    if (line && !line.startsWith('#') && at > 0) users.set(line.slice(0, at), line.slice(at + 1).trim());
  }
}

// --- tokens (HS256) -----------------------------------------------------------------------------
const b64url = (buf) => Buffer.from(buf).toString('base64url');
const sign = (data) => crypto.createHmac('sha256', secret).update(data).digest();
function issue(user) {
  const now = Math.floor(Date.now() / 1000);
  const body = b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' })) + '.' + b64url(JSON.stringify({ sub: user, iat: now, exp: now + 3600 }));
  return body + '.' + b64url(sign(body));
}
function verify(token) {
  const parts = (token || '').split('.');
  if (parts.length !== 3) return null;
  const given = Buffer.from(parts[2], 'base64url');
  const expected = sign(parts[0] + '.' + parts[1]);
  if (given.length !== expected.length || !crypto.timingSafeEqual(given, expected)) return null;
  try {
    const claims = JSON.parse(Buffer.from(parts[1], 'base64url').toString());
    return typeof claims.sub === 'string' && claims.exp > Date.now() / 1000 ? claims.sub : null;
  } catch {
    return null;
  }
}

// --- users: connections indexed by user, then by thread -----------------------------------------
const epoch = crypto.randomBytes(16).toString('hex');
const state = new Map();  // user -> { seq, threads: Map<thread, Set<ws>> }
function userState(user) {
  let s = state.get(user);
  if (!s) state.set(user, (s = { seq: 0, threads: new Map() }));
  return s;
}
function join(ws, thread) {
  const s = userState(ws.user);
  let set = s.threads.get(thread);
  if (!set) s.threads.set(thread, (set = new Set()));
  set.add(ws);
  ws.joined.add(thread);
  ws.send(JSON.stringify({ type: 'joined', thread_id: thread, epoch, seq: s.seq }));
}
function leave(ws, thread) {
  const s = userState(ws.user);
  const set = s.threads.get(thread);
  if (set && set.delete(ws) && set.size === 0) s.threads.delete(thread);
  ws.joined.delete(thread);
}
function emit(user, thread, runId, type, payload) {
  const s = userState(user);
  const text = JSON.stringify({ type, thread_id: thread, run_id: runId, seq: ++s.seq, payload });
  const set = s.threads.get(thread);
  if (set) for (const ws of set) ws.send(text);
}

// --- the demo agent ------------------------------------------------------------------------------
const pause = (ms) =>
  ms === 0 && agentBurst ? null : new Promise((resolve) => (ms > 0 ? setTimeout(resolve, ms) : setImmediate(resolve)));
let nextRun = 1;
async function runAgent(user, thread, message, steps, pad) {
  const runId = 'r-' + nextRun++;
  const padding = '.'.repeat(pad);
  emit(user, thread, runId, 'agent_started', { message });
  for (let i = 1; i <= steps; ++i) {
    await pause(agentDelay);
    emit(user, thread, runId, 'agent_thinking', { step: i, text: 'thinking about: ' + message, pad: padding });
  }
  await pause(agentDelay);
  emit(user, thread, runId, 'tool_executing', { tool: 'echo', input: message });
  await pause(agentDelay);
  emit(user, thread, runId, 'tool_completed', { tool: 'echo', result: message });
  await pause(agentDelay);
  emit(user, thread, runId, 'agent_completed', { response: 'You said: ' + message });
}

function onFrame(ws, data, isBinary) {
  const error = (code, message) => ws.send(JSON.stringify({ type: 'error', code, message }));
  if (isBinary) return error('unsupported', 'binary frames are not supported; send JSON text');
  let f;
  try {
    f = JSON.parse(data.toString());
  } catch {
    return error('bad_request', 'not JSON');
  }
  if (!f || typeof f !== 'object') return error('bad_request', 'not a JSON object');
  if (f.type === 'ping') return ws.send('{"type":"pong"}');
  if (typeof f.thread_id !== 'string' || f.thread_id.length === 0 || f.thread_id.length > 128)
    return error('bad_request', 'thread_id must be a string of 1 to 128 bytes');
  if (f.type === 'join') return join(ws, f.thread_id);
  if (f.type === 'leave') return leave(ws, f.thread_id);
  if (f.type === 'run_agent') {
    const steps = f.steps ?? 1, pad = f.pad ?? 0;
    if (!Number.isInteger(steps) || steps < 0 || steps > 10000 || !Number.isInteger(pad) || pad < 0 || pad > 65536)
      return error('bad_request', 'bad steps or pad');
    join(ws, f.thread_id);
    runAgent(ws.user, f.thread_id, String(f.message ?? ''), steps, pad);
    return;
  }
  error('bad_request', 'unknown type');
}

// --- HTTP and the upgrade ------------------------------------------------------------------------
function answer(res, status, body) {
  res.writeHead(status, { 'Content-Type': 'application/json' });
  res.end(JSON.stringify(body));
}
const server = http.createServer((req, res) => {
  if (req.url === '/health') return answer(res, 200, { status: 'ok' });
  if (req.url !== '/login' || req.method !== 'POST') return answer(res, 404, { error: { code: 'not_found', message: req.url } });
  let body = '';
  req.on('data', (chunk) => {
    body += chunk;
    if (body.length > 16384) req.destroy();
  });
  req.on('end', () => {
    let login;
    try {
      login = JSON.parse(body);
    } catch {
      return answer(res, 400, { error: { code: 'bad_request', message: 'expected {"user","password"}' } });
    }
    if (!login || users.get(login.user) !== login.password || typeof login.password !== 'string')
      return answer(res, 401, { error: { code: 'unauthorized', message: 'wrong user or password' } });
    answer(res, 200, { token: issue(login.user), user: login.user, expires_in: 3600 });
  });
});
const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false, maxPayload: 64 * 1024 });
server.on('upgrade', (req, socket, head) => {
  const url = new URL(req.url, 'http://x');
  const bearer = (req.headers.authorization || '').replace(/^Bearer /, '');
  const user = url.pathname === '/ws' ? verify(bearer || url.searchParams.get('token')) : null;
  if (!user) {
    socket.end('HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\nConnection: close\r\n\r\n');
    return;
  }
  wss.handleUpgrade(req, socket, head, (ws) => {
    ws.user = user;
    ws.joined = new Set();
    ws.on('message', (data, isBinary) => onFrame(ws, data, isBinary));
    ws.on('close', () => {
      for (const thread of ws.joined) leave(ws, thread);
    });
  });
});
server.listen(port, address, () => {
  console.log(`listening on http://${address}:${server.address().port}`);
});
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));
