// uniws-client.js - a client for a uniws server, for browsers and Node: one WebSocket kept open
// across drops, every joined thread resumed. No dependency: it uses the WebSocket it is given
// (in a browser the page's own; in Node, e.g. the `ws` package's).
//
// Contract (docs/clients.md, docs/protocol.md §R):
// - Events come out in the order the server sent them, each at most once: after a reconnect each
//   joined thread is joined again with its epoch and last seq, the server replays what was
//   missed (R2), and anything at or below a thread's last seq is dropped (counted, never
//   expected).
// - When the server cannot replay (R3: it restarted, or its history no longer holds the gap) the
//   client delivers a `state_lost` event for the thread and goes on from the server's seq.
// - The token provider is called for the first connection and again after the server refused a
//   token (HTTP 401, e.g. it expired), with `{ refused: true }`; if the server refuses the next
//   token too the client ends with AuthenticationFailed: no retry storm. A browser hides an
//   upgrade's HTTP status, so after an attempt that did not open the client asks the same URL
//   with a plain GET, which the server answers with the status it refused the upgrade with (W1).
// - Close codes and refusals that a retry cannot change end the client (Refused); the others
//   reconnect after the policy's delay. A connection that answers no ping within pingTimeout is
//   dropped and reconnected.
// - Commands sent while disconnected wait (at most maxPending) and go out after the re-joins; a
//   command is sent at most once (one sent just before a drop may be lost with it).

/** The agent's events, in the order a run emits them (docs/protocol.md W7). */
export const AGENT_EVENT_TYPES = Object.freeze([
  "agent_started", "agent_thinking", "tool_executing", "tool_completed", "agent_completed",
]);

/** The connection's states. */
export const State = Object.freeze({
  connecting: "connecting", open: "open", reconnecting: "reconnecting", closed: "closed",
});

/** Close codes (RFC 6455 7.4.1, docs/protocol.md) and what the client does about each. */
export const CLOSE_CODES = Object.freeze({
  1000: ["stop", "closed by the server"],
  1001: ["reconnect", "the server is going away (restart, drain, or an operator's disconnect)"],
  1006: ["reconnect", "the connection was lost"],
  1008: ["stop", "policy violation: the client sent frames too fast (L3)"],
  1009: ["stop", "a frame of this client was over the server's message size (E3)"],
  1011: ["reconnect", "the server failed"],
  1012: ["reconnect", "the server restarts"],
  1013: ["reconnect", "try again later: the server is full, or this client read too slowly (E4, L1)"],
});

/** HTTP statuses refusing an upgrade that a later attempt may not get (401 asks for a token). */
export const RETRY_STATUSES = Object.freeze([429, 500, 502, 503, 504]);

/**
 * What to do after the connection closed with `code` (undefined: no close frame).
 * @param {number|undefined} code
 * @returns {["reconnect"|"stop", string]}
 */
export function afterClose(code) {
  if (code === undefined || code === null) return CLOSE_CODES[1006];
  return CLOSE_CODES[code] ?? ["reconnect", `closed with code ${code}`];
}

/** The base of every error that ends a client for good: reconnecting would not help. */
export class ClientError extends Error {
  constructor(message) { super(message); this.name = new.target.name; }
}
/** The server refused the token (HTTP 401) and refused the one the provider gave next. */
export class AuthenticationFailed extends ClientError {}
/** The server refused the connection for a reason a retry cannot change (HTTP 403, 404, a close
 * with 1008 or 1009...). */
export class Refused extends ClientError {
  constructor(message, { status = 0, closeCode = 0 } = {}) {
    super(message);
    this.status = status;
    this.closeCode = closeCode;
  }
}
/** The policy's maxAttempts were used up. */
export class GaveUp extends ClientError {}

/**
 * Capped exponential backoff with jitter: attempt n waits initial * multiplier**n ms, at most
 * `maximum`, less a random part of up to `jitter` of it (so that clients dropped together do not
 * come back together). The count starts again once a connection has been open `stable` ms.
 */
export class ReconnectPolicy {
  constructor({ initial = 250, maximum = 5000, multiplier = 2, jitter = 0.5, stable = 10000, maxAttempts = null } = {}) {
    Object.assign(this, { initial, maximum, multiplier, jitter, stable, maxAttempts });
    Object.freeze(this);
  }

  /** @param {number} attempt @param {() => number} [random] @returns {number} ms */
  delay(attempt, random = Math.random) {
    const base = Math.min(this.maximum, this.initial * this.multiplier ** Math.min(attempt, 64));
    return base * (1 - this.jitter * random());
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const UNEXPECTED_RESPONSE = /Unexpected server response: (\d{3})/;  // how `ws` reports a refusal

/** The HTTP URL a WebSocket URL names: the status probe's. */
function httpUrlOf(wsUrl) {
  return wsUrl.replace(/^ws(s?):/i, "http$1:");
}

function withToken(url, token) {
  return url + (url.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(token);
}

export class UniwsClient {
  /**
   * @param {string} url the WebSocket's, e.g. ws://host:port/ws
   * @param {(info: {refused: boolean}) => string | Promise<string>} tokenProvider
   * @param {object} [options] see uniws-client.d.ts
   */
  constructor(url, tokenProvider, options = {}) {
    this.url = url;
    this.policy = options.policy ?? new ReconnectPolicy();
    this.stats = {
      connects: 0,           // connections opened
      failedConnects: 0,     // attempts that did not open (server down, refused, 401)
      tokenRequests: 0,      // calls of the token provider
      resumes: 0,            // joins sent with an epoch and after_seq
      statesLost: 0,         // state_lost events delivered
      duplicatesDropped: 0,  // events at or below their thread's last seq (a server bug if ever > 0)
      events: 0,             // agent events delivered
    };
    this._tokenProvider = tokenProvider;
    this._WebSocket = options.WebSocket ?? globalThis.WebSocket;
    // Called as a plain function: a browser's fetch throws "Illegal invocation" on another `this`.
    const fetchFn = options.fetch ?? globalThis.fetch;
    this._fetch = typeof fetchFn === "function" ? (url, init) => fetchFn(url, init) : null;
    this._pingInterval = options.pingInterval ?? 20000;
    this._pingTimeout = options.pingTimeout ?? 20000;
    this._openTimeout = options.openTimeout ?? 10000;
    this._maxPending = options.maxPending ?? 1024;
    this._maxBuffered = options.maxBuffered ?? 100000;
    this._onEvent = options.onEvent ?? null;
    this._random = options.random ?? Math.random;
    if (typeof this._WebSocket !== "function") throw new TypeError("no WebSocket: pass options.WebSocket");
    this._threads = new Map();  // thread id -> { epoch, lastSeq, resuming }
    this._pending = [];         // command frames (text) waiting for a connection
    this._buffered = [];        // events waiting for the iterator
    this._waiting = null;       // the iterator's resolve, while it waits
    this._delivered = Promise.resolve();  // the chain of onEvent calls (keeps them in order)
    this._ws = null;
    this._kill = null;          // ends the current connection at once (close(), a missed pong)
    this._token = null;
    this._state = State.closed;
    this._reason = "";
    this._closing = false;
    this._ended = null;         // { error } once ended
    this._run = null;
    let resolveClosed;
    this.closed = new Promise((resolve) => { resolveClosed = resolve; });
    this._resolveClosed = resolveClosed;
    if (options.start !== false) this.start();
  }

  // ---- the caller's side ----

  /** Starts connecting (the constructor does, unless given `start: false`). */
  start() {
    if (!this._run) this._run = this._loop();
  }

  /** Closes the connection for good; the iterator ends, `closed` resolves with null. */
  async close() {
    this._closing = true;
    if (this._kill) this._kill(1000);
    this._end(null);
    await this._run;
  }

  get state() { return this._state; }

  /** Receives the thread's events from now on, on this connection and every later one. */
  join(threadId) {
    this._thread(threadId);
    this._send({ type: "join", thread_id: threadId });
  }

  leave(threadId) {
    this._threads.delete(threadId);
    this._send({ type: "leave", thread_id: threadId });
  }

  /** Starts an agent run on the thread (joining it, W5); its events come as agent_event. */
  runAgent(threadId, message, { steps, pad } = {}) {
    this._thread(threadId);
    const frame = { type: "run_agent", thread_id: threadId, message };
    if (steps !== undefined) frame.steps = steps;
    if (pad !== undefined) frame.pad = pad;
    this._send(frame);
  }

  /** The last seq read on the thread (what a resume asks after), or undefined. */
  lastSeq(threadId) { return this._threads.get(threadId)?.lastSeq; }

  /** Every event, in order, until the client ends (then it throws the ClientError that ended it). */
  async *[Symbol.asyncIterator]() {
    for (;;) {
      if (this._buffered.length) {
        yield this._buffered.shift();
        continue;
      }
      if (this._ended) {
        if (this._ended.error) throw this._ended.error;
        return;
      }
      await new Promise((resolve) => { this._waiting = resolve; });
    }
  }

  // ---- the connection ----

  _thread(threadId) {
    let t = this._threads.get(threadId);
    if (!t) this._threads.set(threadId, (t = { epoch: undefined, lastSeq: undefined, resuming: false }));
    return t;
  }

  _send(frame) {
    const text = JSON.stringify(frame);
    if (this._state === State.open && this._ws && this._ws.readyState === 1) {
      this._ws.send(text);
      return;
    }
    if (frame.type === "join" || frame.type === "leave") return;  // the next connection joins every thread
    if (this._pending.length >= this._maxPending)
      throw new ClientError(`${this._maxPending} commands are waiting for a connection already`);
    this._pending.push(text);
  }

  async _token_(refused) {
    if (this._token === null || refused) {
      this.stats.tokenRequests += 1;
      this._token = await this._tokenProvider({ refused });
    }
    return this._token;
  }

  async _loop() {
    let attempt = 0;
    let refreshed = false;  // the token was asked for again after a 401
    try {
      while (!this._closing) {
        this._setState(this.stats.connects === 0 ? State.connecting : State.reconnecting);
        const token = await this._token_(false);
        const attemptResult = await this._open(token);
        if (this._closing) break;
        if (!attemptResult.ws) {
          this.stats.failedConnects += 1;
          const status = attemptResult.status ?? (await this._probe(token));
          if (this._closing) break;
          if (status === 401) {
            if (refreshed) throw new AuthenticationFailed("the server refused the token provider's token twice (401)");
            refreshed = true;
            await this._token_(true);
            continue;  // at once: a new token is no reason to wait
          }
          // 400: the server is up and takes the token, yet the upgrade failed; retry.
          if (status !== null && status !== 400 && !RETRY_STATUSES.includes(status))
            throw new Refused(`the server refused the upgrade with HTTP ${status}`, { status });
          attempt = await this._wait(attempt, status === null
            ? `cannot connect: the server is down or out of reach (${attemptResult.reason})` : `HTTP ${status}`);
          continue;
        }
        refreshed = false;
        this.stats.connects += 1;
        const opened = Date.now();
        const code = await this._serve(attemptResult.ws);
        if (this._closing) break;
        const [action, why] = afterClose(code);
        if (action === "stop") throw new Refused(`closed with ${code}: ${why}`, { closeCode: code });
        if (Date.now() - opened >= this.policy.stable) attempt = 0;
        attempt = await this._wait(attempt, `closed with ${code}: ${why}`);
      }
      this._end(null);
    } catch (e) {
      this._end(e instanceof ClientError ? e : new ClientError(String(e && e.message || e)));
    }
  }

  async _wait(attempt, reason) {
    if (this.policy.maxAttempts !== null && attempt >= this.policy.maxAttempts)
      throw new GaveUp(`gave up after ${attempt} attempts: ${reason}`);
    this._setState(State.reconnecting, reason);
    await new Promise((resolve) => {
      const timer = setTimeout(resolve, this.policy.delay(attempt, this._random));
      this._kill = () => { clearTimeout(timer); resolve(); };
    });
    this._kill = null;
    return attempt + 1;
  }

  /** One attempt: `{ws}` once open, or `{status, reason}` (status null when not known). */
  _open(token) {
    return new Promise((resolve) => {
      let ws;
      try {
        ws = new this._WebSocket(withToken(this.url, token));
      } catch (e) {
        resolve({ status: null, reason: String(e.message || e) });
        return;
      }
      let error = null;
      const done = (result) => {
        clearTimeout(timer);
        ws.onopen = ws.onerror = ws.onclose = null;
        this._kill = null;
        resolve(result);
      };
      const timer = setTimeout(() => { ws.close(); done({ status: null, reason: "no answer in time" }); }, this._openTimeout);
      this._kill = () => { ws.close(); done({ status: null, reason: "closed" }); };
      ws.onopen = () => done({ ws });
      ws.onerror = (e) => { error = e; };
      ws.onclose = () => {
        const m = UNEXPECTED_RESPONSE.exec(String(error?.message ?? ""));
        done({ status: m ? Number(m[1]) : null, reason: String(error?.message || "cannot connect") });
      };
    });
  }

  /** The status the server refuses an upgrade with, from a plain GET of the same URL (W1: the
   * token is checked first); null when the server cannot be reached or the answer not read. */
  async _probe(token) {
    if (typeof this._fetch !== "function") return null;
    try {
      const res = await this._fetch(withToken(httpUrlOf(this.url), token), { cache: "no-store" });
      return res.status;
    } catch {
      return null;  // down, or another origin whose answer the browser hides
    }
  }

  /** Joins every thread, sends what waited, reads until the connection ends; its close code. */
  _serve(ws) {
    return new Promise((resolve) => {
      this._ws = ws;
      let pingTimer = null, pongTimer = null, received = 0;
      const finish = (code) => {
        clearInterval(pingTimer);
        clearTimeout(pongTimer);
        ws.onmessage = ws.onclose = ws.onerror = null;
        this._ws = null;
        this._kill = null;
        if (this._state === State.open) this._state = State.reconnecting;
        resolve(code);
      };
      // A dead connection may never report its close: stop waiting for it, go on at once.
      this._kill = (code) => { try { ws.close(code); } catch { /* already closing */ } finish(code); };
      ws.onclose = (e) => finish(e.code || 1006);
      ws.onerror = () => {};
      ws.onmessage = (m) => {
        received += 1;
        this._onFrame(typeof m.data === "string" ? m.data : String(m.data));
      };
      for (const [threadId, t] of this._threads) {
        const frame = { type: "join", thread_id: threadId };
        if (t.epoch !== undefined && t.lastSeq !== undefined) {
          Object.assign(frame, { epoch: t.epoch, after_seq: t.lastSeq });
          t.resuming = true;
          this.stats.resumes += 1;
        }
        ws.send(JSON.stringify(frame));
      }
      while (this._pending.length) ws.send(this._pending.shift());  // before any command sent from now on
      this._setState(State.open);
      if (this._pingInterval > 0) {
        pingTimer = setInterval(() => {
          const before = received;
          ws.send('{"type":"ping"}');
          clearTimeout(pongTimer);
          pongTimer = setTimeout(() => { if (received === before) this._kill(4000); }, this._pingTimeout);
        }, this._pingInterval);
      }
    });
  }

  _onFrame(text) {
    let frame;
    try {
      frame = JSON.parse(text);
    } catch {
      this._deliver({ kind: "server_error", code: "bad_frame", message: "the server sent a frame that is not JSON" });
      return;
    }
    const kind = frame.type;
    if (kind === "joined") return this._onJoined(frame);
    if (kind === "error") return this._deliver({ kind: "server_error", code: frame.code ?? "", message: frame.message ?? "" });
    if (kind === "pong") return;
    if (frame.seq === undefined || frame.thread_id === undefined) return;
    const t = this._thread(frame.thread_id);
    if (t.lastSeq !== undefined && frame.seq <= t.lastSeq) {
      this.stats.duplicatesDropped += 1;
      return;
    }
    t.lastSeq = frame.seq;
    this.stats.events += 1;
    this._deliver({
      kind: "agent_event", type: kind, threadId: frame.thread_id, runId: frame.run_id ?? "",
      seq: frame.seq, payload: frame.payload ?? {},
    });
  }

  _onJoined(frame) {
    const t = this._thread(frame.thread_id);
    const lost = t.resuming && frame.recovered === false;
    // Lost: another history, or a gap it no longer holds: go on from the server's seq.
    t.lastSeq = lost || t.lastSeq === undefined ? frame.seq : Math.max(t.lastSeq, frame.seq);
    t.epoch = frame.epoch;
    t.resuming = false;
    this._deliver({
      kind: "joined", threadId: frame.thread_id, epoch: frame.epoch, seq: frame.seq,
      recovered: frame.recovered, replayed: frame.replayed ?? 0,
    });
    if (lost) {
      this.stats.statesLost += 1;
      this._deliver({ kind: "state_lost", threadId: frame.thread_id, epoch: frame.epoch, seq: frame.seq });
    }
  }

  _setState(state, reason = "") {
    if (state === this._state && reason === this._reason) return;
    this._state = state;
    this._reason = reason;
    this._deliver({ kind: "state_changed", state, reason });
  }

  _deliver(event) {
    if (this._ended) return;
    if (this._onEvent) {
      this._delivered = this._delivered.then(() => this._onEvent(event)).catch((e) => {
        this._end(new ClientError(`onEvent threw: ${e && e.message || e}`));
        if (this._kill) this._kill(1000);
        this._closing = true;
      });
      return;
    }
    if (this._buffered.length >= this._maxBuffered) {
      // A browser cannot stop reading a WebSocket: rather than hold without bound or drop
      // silently, the client ends and says why.
      this._closing = true;
      if (this._kill) this._kill(1000);
      this._end(new ClientError(`the reader fell behind: ${this._maxBuffered} events waiting`));
      return;
    }
    this._buffered.push(event);
    this._wake();
  }

  _wake() {
    if (this._waiting) {
      const w = this._waiting;
      this._waiting = null;
      w();
    }
  }

  _end(error) {
    if (this._ended) return;
    this._state = State.closed;
    const ended = () => {
      this._ended = { error };
      this._wake();
      this._resolveClosed(error);
    };
    if (this._onEvent) {
      const event = { kind: "state_changed", state: State.closed, reason: error ? error.message : "closed" };
      this._delivered = this._delivered.then(() => this._onEvent(event)).catch(() => {}).then(ended);
    } else {
      this._buffered.push({ kind: "state_changed", state: State.closed, reason: error ? error.message : "closed" });
      ended();
    }
  }
}
