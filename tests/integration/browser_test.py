#!/usr/bin/python3
"""The demo page in a real browser: Debian's Chromium, headless, driven over the DevTools
protocol (python3-websockets). The page runs on clients/js's module (inlined); each scenario
against the real uniws-golden-path:

1. GET / serves the page; it logs in, runs an agent, shows the five events in order.
2. The page served from another origin: without --allow-origin the browser blocks the login
   (a CORS error in the console) and a WebSocket from that origin is refused (403); with it,
   the golden path works from there.
3. The server drops the page's WebSocket mid-run (the admin port's /disconnect): the page
   reconnects by itself, resumes from its last seq, and shows every event of the run once.
4. The server killed mid-run and restarted with a new token key: the page says the server is
   down, its old token is refused (the client learns the 401 a browser hides with a plain GET),
   it logs in again, reconnects and says the thread's history was lost (R3).
5. clients/js used straight from the page: a wrong token ends with AuthenticationFailed after
   two refusals, no storm; 10,000 events of one run reach the page, each once (events/s printed).

Screenshots go to ARTEFACT_DIR (PNG).
Usage: browser_test.py PATH/TO/uniws-golden-path ARTEFACT_DIR
Rules checked: proto-H8 proto-H12 proto-B1 proto-B2 proto-B3 proto-B4 proto-M3
"""
import asyncio
import base64
import functools
import http.server
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import websockets

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from checks import FIVE, check, failures  # noqa: E402


class Server:
    def __init__(self, binary, *args, port=0):
        self.proc = subprocess.Popen([binary, "--port", str(port), *args], stdout=subprocess.PIPE, text=True)
        self.port = int(self.proc.stdout.readline().strip().rsplit(":", 1)[1])
        self.base = f"http://127.0.0.1:{self.port}"
        self.admin = None
        if "--admin-port" in args:
            self.admin = "http://127.0.0.1:" + self.proc.stdout.readline().strip().rsplit(":", 1)[1]

    def stats(self):
        with urllib.request.urlopen((self.admin or self.base) + "/stats", timeout=5) as r:
            return json.loads(r.read())

    def stop(self):
        self.proc.terminate()
        return self.proc.wait(15)


class OtherOrigin:
    """Serves one page on another port: another origin for the browser."""

    def __init__(self, html):
        directory = tempfile.mkdtemp()
        with open(os.path.join(directory, "index.html"), "w") as f:
            f.write(html)
        class Quiet(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *args):
                pass
        handler = functools.partial(Quiet, directory=directory)
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.origin = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self):
        self.httpd.shutdown()


class Page:
    """One tab, over the DevTools protocol: commands, and the console and log kept."""

    def __init__(self, ws):
        self.ws, self.next_id, self.pending, self.console = ws, 0, {}, []
        self.reader = asyncio.ensure_future(self._read())

    async def _read(self):
        async for raw in self.ws:
            msg = json.loads(raw)
            if "id" in msg and msg["id"] in self.pending:
                self.pending.pop(msg["id"]).set_result(msg)
            elif msg.get("method") == "Runtime.consoleAPICalled":
                self.console.append(" ".join(str(a.get("value", a.get("description", ""))) for a in msg["params"]["args"]))
            elif msg.get("method") == "Log.entryAdded":
                self.console.append(msg["params"]["entry"]["text"])

    async def send(self, method, **params):
        self.next_id += 1
        future = asyncio.get_running_loop().create_future()
        self.pending[self.next_id] = future
        await self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        msg = await asyncio.wait_for(future, 30)
        if "error" in msg:
            raise RuntimeError(f"{method}: {msg['error']}")
        return msg["result"]

    async def evaluate(self, expression):
        r = await self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        return r["result"].get("value")

    async def open(self, url):
        self.console.clear()
        await self.send("Page.navigate", url=url)
        await self.wait_for("document.readyState === 'complete' && !!window.uniwsDemo", 15)

    async def wait_for(self, expression, seconds=20):
        deadline = time.time() + seconds
        while time.time() < deadline:
            if await self.evaluate(expression):
                return True
            await asyncio.sleep(0.05)
        return False

    async def run_agent(self, steps=1):
        await self.evaluate(f"document.getElementById('steps').value = {steps}; document.getElementById('run').click()")

    async def screenshot(self, path):
        shot = await self.send("Page.captureScreenshot", format="png")
        with open(path, "wb") as f:
            f.write(base64.b64decode(shot["data"]))


class Browser:
    def __init__(self, work):
        self.profile = os.path.join(work, "chromium-profile")
        shutil.rmtree(self.profile, ignore_errors=True)
        self.proc = subprocess.Popen(
            ["chromium", "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--remote-debugging-port=0",
             "--user-data-dir=" + self.profile, "--window-size=1000,700", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        active = os.path.join(self.profile, "DevToolsActivePort")
        deadline = time.time() + 30
        while not (os.path.exists(active) and open(active).read().count("\n") >= 1):
            if time.time() > deadline:
                raise RuntimeError("chromium did not start")
            time.sleep(0.1)
        self.port = int(open(active).read().split("\n")[0])

    async def page(self):
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}/json/new?about:blank", method="PUT")
        with urllib.request.urlopen(req, timeout=10) as r:
            target = json.loads(r.read())
        page = Page(await websockets.connect(target["webSocketDebuggerUrl"], max_size=None))
        for domain in ("Page", "Runtime", "Log"):
            await page.send(domain + ".enable")
        return page

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        shutil.rmtree(self.profile, ignore_errors=True)


async def events_of(page):
    return await page.evaluate("window.uniwsDemo.events.map(e => [e.type, e.seq])")


async def golden_path(browser, binary, out):
    server = Server(binary, "--agent-delay-ms", "20")
    page = await browser.page()
    await page.open(server.base + "/")
    await page.run_agent()
    done = await page.wait_for("window.uniwsDemo.state === 'done'")
    check(done, "the page on the server's own origin reaches 'done'")
    events = await events_of(page)
    check([t for t, _ in events] == FIVE, f"the page shows the five events in order: {events}")
    check(all(b[1] > a[1] for a, b in zip(events, events[1:])), "with increasing seq")
    rows = await page.evaluate("[...document.querySelectorAll('#events li')].map(li => li.dataset.type)")
    check(rows == FIVE, "the DOM lists them")
    check("done" in await page.evaluate("document.getElementById('state').textContent"), "the state line says done")
    await page.screenshot(os.path.join(out, "golden_path.png"))
    check(server.stop() == 0, "the server exits 0")


async def other_origin(browser, binary, out):
    probe = Server(binary)
    with urllib.request.urlopen(probe.base + "/", timeout=5) as r:
        html = r.read().decode()
    probe.stop()
    site = OtherOrigin(html)

    # Not allowed: the preflight of the JSON login fails, the browser says so, nothing runs.
    server = Server(binary, "--agent-delay-ms", "20")
    page = await browser.page()
    await page.open(f"{site.origin}/index.html?server={server.base}")
    await page.run_agent()
    check(await page.wait_for("window.uniwsDemo.state === 'error'"), "without --allow-origin the page cannot log in")
    await page.wait_for("false", 0.5)  # let the console catch up
    check(any("CORS policy" in line for line in page.console), f"the browser reports a CORS error: {page.console}")
    await page.screenshot(os.path.join(out, "cors_refused.png"))
    # A WebSocket from that origin, even with a valid token, is refused before the upgrade.
    token = json.loads(urllib.request.urlopen(urllib.request.Request(
        server.base + "/login", data=b'{"user":"alice","password":"alice-pw"}',
        headers={"Content-Type": "application/json"}), timeout=5).read())["token"]
    code = await page.evaluate(f"""new Promise(done => {{
        const ws = new WebSocket('ws://127.0.0.1:{server.port}/ws?token={token}');
        ws.onopen = () => done('open'); ws.onclose = (e) => done(e.code); }})""")
    check(code == 1006, f"a WebSocket from another origin is refused (close {code})")
    check(server.stats()["origins_refused"] >= 2, "the server counted the refusals")
    check(server.stop() == 0, "the server exits 0")

    # Allowed: the same page from the same origin walks the golden path.
    server = Server(binary, "--agent-delay-ms", "20", "--allow-origin", site.origin)
    await page.open(f"{site.origin}/index.html?server={server.base}")
    await page.run_agent()
    check(await page.wait_for("window.uniwsDemo.state === 'done'"), "with --allow-origin the other origin's page reaches 'done'")
    events = await events_of(page)
    check([t for t, _ in events] == FIVE, "and shows the five events")
    check(not any("CORS" in line for line in page.console), "no CORS error this time")
    await page.screenshot(os.path.join(out, "cors_allowed.png"))
    check(server.stop() == 0, "the server exits 0")
    site.stop()


async def reconnect(browser, binary, out):
    server = Server(binary, "--agent-delay-ms", "40", "--admin-port", "0")
    page = await browser.page()
    await page.open(server.base + "/")
    await page.run_agent(steps=30)
    check(await page.wait_for("window.uniwsDemo.events.length >= 3"), "the run has started")
    req = urllib.request.Request(server.admin + "/disconnect?user=alice", method="POST")
    with urllib.request.urlopen(req, timeout=5) as r:
        check(json.loads(r.read())["closed"] == 1, "the server closed the page's WebSocket")
    check(await page.wait_for("window.uniwsDemo.reconnects >= 1"), "the page noticed and reconnects")
    check(await page.wait_for("window.uniwsDemo.state === 'done'", 30), "the page finishes the run after reconnecting")
    events = await events_of(page)
    check(events and events[-1][0] == "agent_completed", "the last event shown is agent_completed")
    check(len(events) == 34 and all(b[1] == a[1] + 1 for a, b in zip(events, events[1:])),
          f"every event of the run, once each, in seq order ({len(events)} of 34)")
    resumes = await page.evaluate("window.uniwsDemo.resumes")
    check(len(resumes) >= 1 and all(r["recovered"] for r in resumes), "the page resumed and the server recovered")
    check("resumed" in await page.evaluate("document.getElementById('notes').textContent"),
          "the page says it resumed")
    await page.screenshot(os.path.join(out, "reconnect.png"))
    check(server.stop() == 0, "the server exits 0")


async def restart_and_refused_token(browser, binary, out):
    """The server killed mid-run and restarted with a new key: the page says it cannot reach the
    server, then its old token is refused (401, which a browser hides: the client asks with a plain
    GET), the page logs in again, reconnects, and says what it could not recover (R3)."""
    server = Server(binary, "--agent-delay-ms", "40")  # a random token key at each start
    page = await browser.page()
    await page.open(server.base + "/")
    await page.run_agent(steps=80)
    check(await page.wait_for("window.uniwsDemo.events.length >= 2"), "a long run has started")
    server.proc.kill()  # no drain, no close frame: the server is simply gone
    server.proc.wait(10)
    check(await page.wait_for("document.getElementById('state').textContent.includes('server is down')", 15),
          "with the server gone the page says the server is down, and keeps trying")
    await page.screenshot(os.path.join(out, "server_down.png"))
    server = Server(binary, "--agent-delay-ms", "40", port=server.port)
    check(await page.wait_for("window.uniwsDemo.logins >= 2", 15), "the old token was refused: the page logged in again")
    check(await page.wait_for("window.uniwsDemo.lost.length >= 1 && window.uniwsDemo.state === 'open'", 15),
          "reconnected, and told that the thread's history was lost")
    check("no longer holds" in await page.evaluate("document.getElementById('notes').textContent"),
          "the page says events may be missing")
    check(await page.evaluate("window.uniwsDemo.errors.length") == 0, "no error shown")
    await page.screenshot(os.path.join(out, "state_lost.png"))
    check(server.stop() == 0, "the server exits 0")


async def client_in_page(browser, binary, out):
    """clients/js straight from the page: a wrong token ends it with AuthenticationFailed after two
    refusals; 10,000 events of one run reach the page, each once (events/s printed)."""
    server = Server(binary, "--agent-delay-ms", "0", "--admin-port", "0")
    page = await browser.page()
    await page.open(server.base + "/")
    url = f"ws://127.0.0.1:{server.port}/ws"
    before = server.stats()["auth_failures"]
    result = await page.evaluate(f"""(async () => {{
        let calls = 0;
        const c = new UniwsClient('{url}', () => {{ calls += 1; return 'forged.token.value'; }},
                                  {{ policy: new ReconnectPolicy({{ initial: 50, maximum: 500 }}), onEvent: () => {{}} }});
        const error = await c.closed;
        await new Promise(r => setTimeout(r, 1000));  // a storm would go on meanwhile
        return {{ name: error && error.name, message: error && error.message, calls }};
    }})()""")
    check(result["name"] == "AuthenticationFailed" and "401" in result["message"],
          f"a wrong token in the page: AuthenticationFailed ({result})")
    check(result["calls"] == 2, f"the provider asked twice, no more ({result['calls']})")
    check(server.stats()["auth_failures"] - before == 4, "two refused upgrades, each asked again by a plain GET, no storm")

    token = json.loads(urllib.request.urlopen(urllib.request.Request(
        server.base + "/login", data=b'{"user":"bob","password":"bob-pw"}',
        headers={"Content-Type": "application/json"}), timeout=5).read())["token"]
    result = await page.evaluate(f"""(async () => {{
        const seqs = [];
        let started = 0, done;
        const finished = new Promise(r => done = r);
        const c = new UniwsClient('{url}', () => '{token}', {{ onEvent: (e) => {{
            if (e.kind !== 'agent_event') return;
            seqs.push(e.seq);
            if (e.type === 'agent_completed') done();
        }} }});
        started = performance.now();
        c.runAgent('big', 'ten thousand', {{ steps: 9996 }});
        await Promise.race([finished, new Promise(r => setTimeout(r, 60000))]);
        const ms = performance.now() - started;
        await c.close();
        return {{ count: seqs.length, consecutive: seqs.every((s, i) => s === seqs[0] + i), ms,
                 duplicates: c.stats.duplicatesDropped }};
    }})()""")
    check(result["count"] == 10000 and result["consecutive"], f"10,000 events in the page, each once, in order ({result['count']})")
    check(result["duplicates"] == 0, "nothing twice")
    check(server.stats()["messages_dropped"] == 0, "the server dropped none")
    print(f"browser_test: 10,000 events in the page in {result['ms'] / 1000:.2f} s, "
          f"{result['count'] / (result['ms'] / 1000):,.0f} events/s", flush=True)
    check(server.stop() == 0, "the server exits 0")


async def main(binary, out):
    os.makedirs(out, exist_ok=True)
    browser = Browser(out)
    try:
        await golden_path(browser, binary, out)
        await other_origin(browser, binary, out)
        await reconnect(browser, binary, out)
        await restart_and_refused_token(browser, binary, out)
        await client_in_page(browser, binary, out)
    finally:
        browser.stop()


if __name__ == "__main__":
    started = time.time()
    asyncio.run(main(sys.argv[1], sys.argv[2]))
    print(f"browser_test: {len(failures)} failed checks in {time.time() - started:.1f} s")
    sys.exit(1 if failures else 0)
