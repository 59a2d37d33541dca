#!/usr/bin/python3
"""Identity and transport, checked with tools nobody here wrote: tokens minted by PyJWT
(Debian's python3-jwt) with keys made by the `openssl` command, TLS through Python's ssl module
and python3-websockets, against a test CA made here.

Usage: jwt_tls_test.py PATH/TO/uniws-golden-path
Rules checked: proto-J1 proto-J2 proto-T1 proto-S4 proto-H3
"""
import asyncio
import base64
import hashlib
import hmac
import http.client
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time

import jwt  # PyJWT
import websockets

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
from checks import FIVE, check, failures  # noqa: E402

SERVER = sys.argv[1]


def openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True)


class Server:
    def __init__(self, *flags):
        self.proc = subprocess.Popen([SERVER, "--port", "0", "--agent-delay-ms", "1", *flags],
                                     stdout=subprocess.PIPE, text=True)
        self.first_line = self.proc.stdout.readline().strip()
        self.port = int(self.first_line.rsplit(":", 1)[1])
        if "--admin-port" in flags:
            self.admin_line = self.proc.stdout.readline().strip()
            self.admin_port = int(self.admin_line.rsplit(":", 1)[1])

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=15)


def request(port, method, path, body=None, tls=None, source="127.0.0.1"):
    cls = http.client.HTTPSConnection if tls else http.client.HTTPConnection
    kwargs = {"context": tls} if tls else {}
    conn = cls("127.0.0.1", port, timeout=10, source_address=(source, 0), **kwargs)
    headers = {"Content-Type": "application/json"} if body is not None else {}
    conn.request(method, path, body=json.dumps(body) if body is not None else None, headers=headers)
    res = conn.getresponse()
    data = res.read()
    conn.close()
    return res.status, dict(res.getheaders()), json.loads(data) if data else None


async def upgrade_status(port, token, tls=None):
    """101 when the token opens a WebSocket, else the HTTP status of the refusal."""
    scheme = "wss" if tls else "ws"
    try:
        async with websockets.connect(f"{scheme}://127.0.0.1:{port}/ws?token={token}", ssl=tls, open_timeout=10):
            return 101
    except websockets.exceptions.InvalidStatusCode as e:
        return e.status_code


async def golden_path(port, token, tls=None):
    """Opens a WebSocket with the token, runs an agent: the event types received."""
    scheme = "wss" if tls else "ws"
    async with websockets.connect(f"{scheme}://127.0.0.1:{port}/ws",
                                  extra_headers={"Authorization": "Bearer " + token}, ssl=tls) as ws:
        await ws.send(json.dumps({"type": "run_agent", "thread_id": "t1", "message": "hi"}))
        types = []
        while True:
            frame = json.loads(await asyncio.wait_for(ws.recv(), 10))
            if frame["type"] != "joined":
                types.append(frame["type"])
            if frame["type"] == "agent_completed":
                return types


def b64(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def claims(**extra):
    now = int(time.time())
    return {"sub": "carol", "iat": now, "exp": now + 300, **extra}


def refusals(run, port, good):
    """The forgeries every configuration must refuse (proto-J1), built from a good token."""
    header, payload, signature = good.split(".")
    tampered = json.loads(base64.urlsafe_b64decode(payload + "=="))
    tampered["sub"] = "mallory"
    none = b64(b'{"alg":"none","typ":"JWT"}') + "." + payload + "."
    cases = {
        "alg none": none,
        "tampered payload": header + "." + b64(json.dumps(tampered).encode()) + "." + signature,
        "signature of another token": none[:-1] + signature,
        "garbage": "not-a-jwt",
        "empty signature": header + "." + payload + ".",
    }
    for what, token in cases.items():
        check(run(upgrade_status(port, token)) == 401, f"{what}: 401 before the upgrade")


def main():
    run = asyncio.new_event_loop().run_until_complete
    work = tempfile.mkdtemp(prefix="uniws-jwt-")
    path = lambda name: os.path.join(work, name)  # noqa: E731
    # The identity provider's keys, made by openssl.
    openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", path("rsa.key"))
    openssl("pkey", "-in", path("rsa.key"), "-pubout", "-out", path("rsa.pub"))
    openssl("genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out", path("other-rsa.key"))
    openssl("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256", "-out", path("ec.key"))
    openssl("pkey", "-in", path("ec.key"), "-pubout", "-out", path("ec.pub"))
    rsa_key, rsa_pub = open(path("rsa.key")).read(), open(path("rsa.pub")).read()
    ec_key = open(path("ec.key")).read()
    servers = []
    try:
        # --- HS256 with a shared secret, audience and issuer (proto-J2) ---
        secret = "a-secret-shared-with-the-idp-0123"
        s = Server("--jwt-secret", secret, "--jwt-audience", "chat", "--jwt-issuer", "https://idp.example")
        servers.append(s)
        status, _, body = request(s.port, "POST", "/login", {"user": "alice", "password": "alice-pw"})
        decoded = jwt.decode(body["token"], secret, algorithms=["HS256"], audience="chat", issuer="https://idp.example")
        check(status == 200 and decoded["sub"] == "alice" and decoded["exp"] - decoded["iat"] == body["expires_in"],
              "/login issues an HS256 JWT PyJWT verifies: sub, aud, iss, exp = iat + expires_in")
        good = jwt.encode(claims(aud="chat", iss="https://idp.example"), secret, algorithm="HS256")
        check(run(golden_path(s.port, good)) == FIVE, "a PyJWT HS256 token for a user the server never saw runs the golden path")
        check(run(upgrade_status(s.port, body["token"])) == 101, "the server's own token opens a WebSocket")
        hs = lambda c, key=secret: jwt.encode(c, key, algorithm="HS256")  # noqa: E731
        for what, token in {
            "wrong key": hs(claims(aud="chat", iss="https://idp.example"), "another-secret-of-enough-bytes"),
            "expired beyond the leeway": hs(claims(aud="chat", iss="https://idp.example", exp=int(time.time()) - 60)),
            "nbf in the future": hs(claims(aud="chat", iss="https://idp.example", nbf=int(time.time()) + 120)),
            "wrong aud": hs(claims(aud="other", iss="https://idp.example")),
            "no aud": hs(claims(iss="https://idp.example")),
            "wrong iss": hs(claims(aud="chat", iss="https://evil.example")),
            "no sub": hs({k: v for k, v in claims(aud="chat", iss="https://idp.example").items() if k != "sub"}),
            "no exp": hs({k: v for k, v in claims(aud="chat", iss="https://idp.example").items() if k != "exp"}),
        }.items():
            check(run(upgrade_status(s.port, token)) == 401, f"HS256, {what}: 401")
        check(run(upgrade_status(s.port, hs(claims(aud="chat", iss="https://idp.example", exp=int(time.time()) - 10)))) == 101,
              "HS256, expired 10 s ago: within the 30 s leeway, accepted")
        refusals(run, s.port, good)
        # Login brake (proto-H3): 3 failures of alice from 127.0.0.1, then 429.
        s.stop()
        s = Server("--login-failures-per-user-address", "3", "--login-failures-per-address", "10")
        servers.append(s)
        codes = [request(s.port, "POST", "/login", {"user": "alice", "password": "guess"})[0] for _ in range(3)]
        status, headers, body = request(s.port, "POST", "/login", {"user": "alice", "password": "alice-pw"})
        check(codes == [401] * 3 and status == 429 and int(headers.get("Retry-After", "0")) > 0
              and body["error"]["code"] == "too_many_attempts",
              f"3 failed logins, then 429 with Retry-After even for the right password ({codes}, {status})")
        check(request(s.port, "POST", "/login", {"user": "bob", "password": "bob-pw"})[0] == 200,
              "another user from the same address still logs in")
        check(request(s.port, "POST", "/login", {"user": "alice", "password": "alice-pw"}, source="127.0.0.2")[0] == 200,
              "the same user from another address still logs in")
        _, _, stats = request(s.port, "GET", "/stats")
        check(stats["logins_throttled"] == 1 and stats["auth_failures"] == 3, "throttled and failed logins are counted")
        s.stop()

        # --- RS256 from an identity provider's public key ---
        s = Server("--jwt-public-key", path("rsa.pub"))
        servers.append(s)
        good = jwt.encode(claims(), rsa_key, algorithm="RS256")
        check(run(golden_path(s.port, good)) == FIVE, "a PyJWT RS256 token signed with the provider's key runs the golden path")
        confused = b64(b'{"alg":"HS256","typ":"JWT"}') + "." + good.split(".")[1]
        confused += "." + b64(hmac.new(rsa_pub.encode(), confused.encode(), hashlib.sha256).digest())
        check(run(upgrade_status(s.port, confused)) == 401, "HS256 signed with the public key's PEM (key confusion): 401")
        check(run(upgrade_status(s.port, jwt.encode(claims(), open(path("other-rsa.key")).read(), algorithm="RS256"))) == 401,
              "RS256 signed by another key: 401")
        check(run(upgrade_status(s.port, jwt.encode(claims(), ec_key, algorithm="ES256"))) == 401,
              "ES256 when the key is RSA: 401")
        refusals(run, s.port, good)
        status, _, body = request(s.port, "POST", "/login", {"user": "alice", "password": "alice-pw"})
        check(status == 404 and body["error"]["code"] == "login_disabled", "with a public key, /login is off (404)")
        _, _, config = request(s.port, "GET", "/config")
        check(config["jwt_key"] == "public key" and config["jwt_algorithm"] == "RS256", "/config says: a public key, RS256")
        s.stop()

        # --- ES256 ---
        s = Server("--jwt-public-key", path("ec.pub"))
        servers.append(s)
        good = jwt.encode(claims(), ec_key, algorithm="ES256")
        check(run(golden_path(s.port, good)) == FIVE, "a PyJWT ES256 token runs the golden path")
        check(request(s.port, "GET", "/config")[2]["jwt_algorithm"] == "ES256", "/config says ES256")
        check(run(upgrade_status(s.port, jwt.encode(claims(), rsa_key, algorithm="RS256"))) == 401, "RS256 when the key is EC: 401")
        refusals(run, s.port, good)
        s.stop()

        # A bad key file is refused at start, naming it.
        bad = subprocess.run([SERVER, "--port", "0", "--jwt-public-key", path("rsa.key.missing")], capture_output=True, text=True)
        check(bad.returncode != 0 and "rsa.key.missing" in bad.stderr, "a missing key file: the server does not start, and says why")

        # --- TLS (proto-T1, proto-S4): a CA made here, a certificate for 127.0.0.1 ---
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=uniws test CA",
                "-keyout", path("ca.key"), "-out", path("ca.pem"))
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout", path("server.key"),
                "-out", path("server.csr"))
        with open(path("ext.cnf"), "w") as f:
            f.write("subjectAltName=IP:127.0.0.1\n")
        openssl("x509", "-req", "-in", path("server.csr"), "-CA", path("ca.pem"), "-CAkey", path("ca.key"),
                "-CAcreateserial", "-days", "2", "-extfile", path("ext.cnf"), "-out", path("server.pem"))
        tls = ssl.create_default_context(cafile=path("ca.pem"))
        s = Server("--tls-cert", path("server.pem"), "--tls-key", path("server.key"), "--handshake-timeout", "1",
                   "--admin-port", "0")
        servers.append(s)
        check(s.first_line.startswith("listening on https://127.0.0.1:") and s.admin_line.startswith("admin on https://"),
              "with TLS the first line says https://, and so does the admin port's")
        status, _, body = request(s.port, "POST", "/login", {"user": "alice", "password": "alice-pw"}, tls=tls)
        check(status == 200, "login over HTTPS, the certificate verified against the test CA")
        token = body["token"]
        check(run(golden_path(s.port, token, tls)) == FIVE, "wss://: the golden path over TLS")
        try:
            request(s.port, "GET", "/health")
            check(False, "plain HTTP on the TLS port fails")
        except (http.client.HTTPException, ConnectionError, OSError):
            check(True, "plain HTTP on the TLS port fails")
        try:
            run(upgrade_status(s.port, token))
            check(False, "ws:// on the TLS port fails")
        except (websockets.exceptions.WebSocketException, ConnectionError, OSError, asyncio.TimeoutError):
            check(True, "ws:// on the TLS port fails")
        # A client that connects and never finishes the handshake is cut off (1 s here).
        stalled = socket.create_connection(("127.0.0.1", s.port), timeout=10)
        stalled.sendall(b"\x16\x03\x01")  # the first bytes of a ClientHello, and no more
        started = time.monotonic()
        try:
            cut = stalled.recv(1) == b""
        except ConnectionResetError:
            cut = True
        check(cut and time.monotonic() - started < 5, f"a stalled TLS handshake is cut off ({time.monotonic() - started:.1f} s)")
        stalled.close()
        status, _, health = request(s.port, "GET", "/health", tls=tls)
        check(status == 200 and health["status"] == "ok", "after all that the server still answers over HTTPS")
        _, _, stats = request(s.admin_port, "GET", "/stats", tls=tls)
        check(stats["tls_handshakes_failed"] >= 3, f"failed handshakes are counted ({stats['tls_handshakes_failed']})")
        check(s.stop() == 0, "SIGTERM: the TLS server exits 0")
    finally:
        for s in servers:
            if s.proc.poll() is None:
                s.proc.kill()
    print(f"jwt_tls_test: {len(failures)} failed checks")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
