// demo_page.hpp - the page GET / serves: the golden path in a browser (log in, open the
// WebSocket with ?token=, run an agent, show its events), reconnecting by itself when the
// connection drops. Plain HTML and JavaScript, no external resources.
#pragma once

#include <string_view>

namespace golden_path {

inline constexpr std::string_view demo_page = R"page(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<link rel="icon" href="data:,">
<title>uniws demo</title>
<style>
  body { font: 15px/1.4 system-ui, sans-serif; margin: 2em auto; max-width: 52em; color: #222; }
  form { display: flex; flex-wrap: wrap; gap: .5em; align-items: end; }
  label { display: flex; flex-direction: column; font-size: 12px; color: #555; }
  input { font: inherit; padding: .25em .4em; }
  #state { margin: 1em 0; padding: .5em .8em; border-radius: 4px; background: #eef; }
  #state[data-state=done] { background: #dfd; }
  #state[data-state=error] { background: #fdd; }
  #state[data-state=reconnecting] { background: #ffd; }
  #events { list-style: none; padding: 0; font-family: ui-monospace, monospace; font-size: 13px; }
  #events li { padding: .2em 0; border-bottom: 1px solid #eee; }
  #events b { display: inline-block; width: 10em; }
  #events .seq { display: inline-block; width: 5em; color: #777; }
  #notes { color: #a60; font-size: 13px; }
</style>
</head>
<body>
<h1>uniws: an agent's events, live</h1>
<form id="form">
  <label>user <input id="user" value="alice" autocomplete="username"></label>
  <label>password <input id="password" type="password" value="alice-pw" autocomplete="current-password"></label>
  <label>thread <input id="thread" value="t1" size="8"></label>
  <label>message <input id="message" value="hello from the browser"></label>
  <label>thinking steps <input id="steps" type="number" value="1" min="0" max="10000" size="5"></label>
  <button id="run" type="submit">Run an agent</button>
</form>
<div id="state" data-state="idle">idle</div>
<div id="notes"></div>
<ol id="events"></ol>
<script>
"use strict";
// ?server=http://host:port talks to another server (it must --allow-origin this page's origin).
const params = new URLSearchParams(location.search);
const base = params.get("server") || "";
const wsBase = (base || location.origin).replace(/^http/, "ws");
const $ = (id) => document.getElementById(id);
const demo = window.uniwsDemo = { state: "idle", events: [], reconnects: 0, logins: 0, errors: [], resumes: [] };
let token = null, tokenExpires = 0, run = null, attempt = 0;

function setState(state, detail) {
  demo.state = state;
  $("state").dataset.state = state;
  $("state").textContent = state + (detail ? ": " + detail : "");
}
function note(text) { $("notes").textContent = text; }
function fail(text) { demo.errors.push(text); setState("error", text); }

async function login() {
  setState("logging in");
  const res = await fetch(base + "/login", {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ user: $("user").value, password: $("password").value }),
  });
  const body = await res.json();
  if (!res.ok) throw new Error("login refused (" + res.status + "): " + (body.error ? body.error.message : ""));
  token = body.token;
  demo.logins += 1;
  tokenExpires = Date.now() + (body.expires_in || 60) * 1000 - 2000;
}

async function serverIsUp() {
  try { return (await fetch(base + "/health", { cache: "no-store" })).ok; } catch (e) { return false; }
}

function show(event) {
  demo.events.push(event);
  const li = document.createElement("li");
  li.dataset.type = event.type;
  li.dataset.seq = event.seq;
  li.innerHTML = "<b></b><span class=seq></span><code></code>";
  li.querySelector("b").textContent = event.type;
  li.querySelector(".seq").textContent = "seq " + event.seq;
  li.querySelector("code").textContent = JSON.stringify(event.payload);
  $("events").appendChild(li);
}

function connect() {
  setState(attempt ? "reconnecting" : "connecting", attempt ? "attempt " + attempt : "");
  const ws = new WebSocket(wsBase + "/ws?token=" + encodeURIComponent(token));
  let opened = false;
  ws.onopen = () => {
    opened = true;
    attempt = 0;
    setState("open", "thread " + run.thread);
    if (!run.started) {
      run.started = true;
      ws.send(JSON.stringify({ type: "run_agent", thread_id: run.thread, message: run.message, steps: run.steps }));
    } else {
      // Resume: the server replays what this page missed since its last seq, then goes live.
      ws.send(JSON.stringify({ type: "join", thread_id: run.thread, epoch: run.epoch, after_seq: run.lastSeq }));
    }
  };
  ws.onmessage = (m) => {
    const frame = JSON.parse(m.data);
    if (frame.type === "error") return fail(frame.code + ": " + frame.message);
    if (frame.thread_id !== run.thread) return;
    if (frame.type === "joined") {
      run.epoch = frame.epoch;
      run.lastSeq = Math.max(run.lastSeq, frame.seq);
      if (frame.recovered === undefined) return;
      demo.resumes.push(frame);
      return note(frame.recovered
        ? "Reconnected and resumed: " + frame.replayed + " missed event(s) replayed."
        : "Reconnected, but the server no longer holds what was missed: events sent meanwhile are not shown.");
    }
    if (frame.run_id === undefined) return;
    run.lastSeq = frame.seq;
    show(frame);
    if (frame.type === "agent_completed") {
      run.done = true;
      setState("done", demo.events.length + " events");
      ws.close(1000);
    }
  };
  ws.onclose = (e) => { if (!run.done && demo.state !== "error") reconnectLater(opened, e.code); };
}

// Backs off 250 ms, 500 ms, ... up to 5 s. A server that is down is waited for; a token that
// has expired (or an upgrade refused while the server is up) means logging in again.
async function reconnectLater(opened, code) {
  attempt += 1;
  demo.reconnects += 1;
  if (attempt > 10) return fail("gave up after 10 attempts");
  const delay = Math.min(250 * 2 ** (attempt - 1), 5000);
  if (!(await serverIsUp())) {
    setState("reconnecting", "the server is down; attempt " + attempt + " in " + delay + " ms");
  } else if (Date.now() > tokenExpires || (!opened && attempt > 1)) {
    setState("reconnecting", "the token expired: logging in again");
    try { await login(); } catch (e) { return fail(e.message); }
  } else {
    setState("reconnecting", "connection lost (code " + code + "); attempt " + attempt + " in " + delay + " ms");
  }
  setTimeout(connect, delay);
}

$("form").addEventListener("submit", async (e) => {
  e.preventDefault();
  $("events").textContent = "";
  note("");
  demo.events = [];
  run = { thread: $("thread").value, message: $("message").value, steps: Number($("steps").value), started: false, done: false, epoch: "", lastSeq: 0 };
  attempt = 0;
  try {
    if (!token || Date.now() > tokenExpires) await login();
    connect();
  } catch (err) {
    fail(err.message);
  }
});
</script>
</body>
</html>
)page";

}  // namespace golden_path
