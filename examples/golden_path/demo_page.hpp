// demo_page.hpp - the page GET / serves: the golden path in a browser (log in, run an agent,
// show its events), reconnecting and resuming when the connection drops. All of the protocol is
// clients/js's module (client_module.hpp), inlined: this page only logs in and shows events.
// Plain HTML and JavaScript, no external resources.
#pragma once

#include <string>
#include <string_view>

#include "client_module.hpp"

namespace golden_path {

// The page up to its script, the client module, then the page's own code.
inline constexpr std::string_view demo_page_head = R"page(<!doctype html>
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
<script type="module">
)page";

inline constexpr std::string_view demo_page_script = R"page(
// ---- the page: uniws-client.js above does the protocol ----
// ?server=http://host:port talks to another server (it must --allow-origin this page's origin).
const params = new URLSearchParams(location.search);
const base = params.get("server") || "";
const wsUrl = (base || location.origin).replace(/^http/, "ws") + "/ws";
const $ = (id) => document.getElementById(id);
const demo = window.uniwsDemo = { state: "idle", events: [], reconnects: 0, logins: 0, errors: [], resumes: [], lost: [] };
Object.assign(window, { UniwsClient, ReconnectPolicy });  // for the console, and the tests
let token = null, client = null, run = null;

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
}

// The client asks for a token to connect, and again when the server refused the last one.
async function tokens({ refused }) {
  if (!token || refused) await login();
  return token;
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

function onEvent(e) {
  if (e.kind === "state_changed") {
    if (e.state === "reconnecting" && demo.state === "open") demo.reconnects += 1;
    if (e.state === "closed") return run.done || e.reason === "closed" ? undefined : fail(e.reason);
    if (demo.state !== "done" && demo.state !== "error") setState(e.state, e.state === "open" ? "thread " + run.thread : e.reason);
  } else if (e.kind === "server_error") {
    fail(e.code + ": " + e.message);
  } else if (e.threadId !== run.thread) {
    return;
  } else if (e.kind === "joined" && e.recovered !== undefined) {
    demo.resumes.push({ recovered: e.recovered, replayed: e.replayed });
    if (e.recovered) note("Reconnected and resumed: " + e.replayed + " missed event(s) replayed.");
  } else if (e.kind === "state_lost") {
    demo.lost.push(e);
    note("Reconnected, but the server no longer holds what was missed: events sent meanwhile are not shown.");
  } else if (e.kind === "agent_event") {
    show(e);
    if (e.type === "agent_completed") {
      run.done = true;
      setState("done", demo.events.length + " events");
      client.close();
    }
  }
}

$("form").addEventListener("submit", async (e) => {
  e.preventDefault();
  $("events").textContent = "";
  note("");
  demo.events = [];
  if (client) await client.close();
  run = { thread: $("thread").value, done: false };
  try {
    if (!token) await login();
  } catch (err) {
    return fail(err.message);
  }
  client = new UniwsClient(wsUrl, tokens, { onEvent });
  client.runAgent(run.thread, $("message").value, { steps: Number($("steps").value) });
});
</script>
</body>
</html>
)page";

inline std::string demo_page() {
  std::string page;
  page.reserve(demo_page_head.size() + client_module.size() + demo_page_script.size());
  page.append(demo_page_head).append(client_module).append(demo_page_script);
  return page;
}

}  // namespace golden_path
