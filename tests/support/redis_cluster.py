"""A local Redis Cluster for tests and benchmarks: six redis-server processes on 127.0.0.1 in
cluster mode (3 masters with a replica each, cluster-node-timeout 1 s, no persistence),
made with `redis-cli --cluster create`, killed by PID at the end.

cluster-require-full-coverage is off: with Redis' default, every master refuses writes while
any slot is uncovered, so one failing shard would stop all users (docs/protocol.md C3).

RedisCluster(work, login=True) locks it as a managed Redis is: the default user has a password
(ADMIN_PASSWORD; redis-cli here and the replicas use it) and the nodes log in as APP_USER, an
ACL user with only uniws's keys, channels and commands (APP_ACL, docs/scaling.md's line); and
with tls=True every connection, the cluster bus and replication included, is TLS only, clients
showing a certificate (make_redis_certs.sh; node_flags() gives a uniws node its files).
"""
import os
import random
import signal
import socket
import subprocess
import time
import json
import urllib.request


def free_port():
    """A port p with p + 10000 free too: the cluster bus listens there."""
    while True:
        port = random.randint(20000, 40000)
        try:
            with socket.socket() as s1, socket.socket() as s2:
                s1.bind(("127.0.0.1", port))
                s2.bind(("127.0.0.1", port + 10000))
            return port
        except OSError:
            continue


ADMIN_PASSWORD = "uniws-test-admin-pw"
APP_USER, APP_PASSWORD = "uniws", "uniws-test-app-pw"
APP_ACL = ["on", ">" + APP_PASSWORD, "resetkeys", "~uniws:*", "resetchannels", "&uniws:*", "-@all",
           "+eval", "+ssubscribe", "+sunsubscribe", "+cluster|slots", "+asking",
           "+get", "+set", "+incr", "+del", "+exists", "+expire", "+time", "+xadd", "+xrange", "+spublish"]
_cli_env = None  # REDISCLI_AUTH, once a cluster with a login is up
_cli_tls = []  # redis-cli's TLS flags, once a cluster with TLS is up


def cli_command(*args):
    """A redis-cli command line for the cluster made last (TLS flags included)."""
    return ["redis-cli", *_cli_tls, *args]


def cli_env():
    """The environment a redis-cli needs for the cluster made last (its admin password)."""
    return _cli_env


def cli(port, *args, check_rc=True):
    r = subprocess.run(cli_command("-p", str(port), *args), capture_output=True, text=True, timeout=30,
                       env=_cli_env)
    if check_rc and r.returncode != 0:
        raise RuntimeError(f"redis-cli -p {port} {' '.join(args)}: {r.stderr}")
    return r.stdout


class RedisCluster:
    """Six redis-server processes in cluster mode, three masters with a replica each."""

    def __init__(self, work, login=False, tls=False):
        global _cli_env, _cli_tls
        self.work = work
        self.login = login
        self.certs = os.path.join(work, "certs") if tls else None
        locked = []
        if tls:
            subprocess.run(["sh", os.path.join(os.path.dirname(os.path.abspath(__file__)), "make_redis_certs.sh"),
                            self.certs], check=True, timeout=60)
            c = lambda name: os.path.join(self.certs, name)  # noqa: E731
            locked += ["--tls-cluster", "yes", "--tls-replication", "yes", "--tls-cert-file", c("redis.pem"),
                       "--tls-key-file", c("redis.key"), "--tls-ca-cert-file", c("ca.pem"),
                       "--tls-auth-clients", "yes"]
            _cli_tls = ["--tls", "--cacert", c("ca.pem"), "--cert", c("client.pem"), "--key", c("client.key")]
        if login:
            locked += ["--requirepass", ADMIN_PASSWORD, "--masterauth", ADMIN_PASSWORD, "--user", APP_USER, *APP_ACL]
            _cli_env = dict(os.environ, REDISCLI_AUTH=ADMIN_PASSWORD)
        self.ports = []
        while len(self.ports) < 6:
            p = free_port()
            if all(abs(p - q) > 1 for q in self.ports):
                self.ports.append(p)
        self.procs = {}
        for p in self.ports:
            d = os.path.join(work, str(p))
            os.makedirs(d)
            ports = ["--port", "0", "--tls-port", str(p)] if tls else ["--port", str(p)]
            self.procs[p] = subprocess.Popen(
                ["redis-server", *ports, "--bind", "127.0.0.1", "--cluster-enabled", "yes",
                 "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "1000",
                 "--cluster-require-full-coverage", "no", "--save", "",
                 "--appendonly", "no", "--dir", d, "--logfile", os.path.join(d, "log"), *locked])
        for p in self.ports:
            self.wait(lambda: cli(p, "PING", check_rc=False).strip() == "PONG", f"redis-server on {p} answers")
        out = subprocess.run(cli_command("--cluster", "create", *[f"127.0.0.1:{p}" for p in self.ports]) + [
                              "--cluster-replicas", "1", "--cluster-yes"], capture_output=True, text=True, timeout=60,
                             env=_cli_env)
        if out.returncode != 0:
            raise RuntimeError("cluster create failed: " + out.stdout + out.stderr)
        self.wait(self.healthy, "cluster ok, every replica in sync")

    def node_flags(self):
        """What a uniws node needs to reach this cluster over TLS (nothing without)."""
        if not self.certs:
            return []
        return ["--redis-tls-ca", os.path.join(self.certs, "ca.pem"), "--redis-tls-cert",
                os.path.join(self.certs, "client.pem"), "--redis-tls-key", os.path.join(self.certs, "client.key")]

    def role(self, port):
        return cli(port, "ROLE").split("\n")[0].strip()

    def masters(self):
        return [p for p in self.ports if p in self.procs and self.role(p) == "master"]

    def healthy(self):
        alive = [p for p in self.ports if p in self.procs]
        if any("cluster_state:ok" not in cli(p, "CLUSTER", "INFO", check_rc=False) for p in alive):
            return False
        replicas = [p for p in alive if self.role(p) == "slave"]
        return len(self.masters()) == 3 and all(
            "master_link_status:up" in cli(p, "INFO", "replication", check_rc=False) for p in replicas)

    def replica_of(self, master):
        for p in self.ports:
            lines = cli(p, "ROLE").split("\n")
            if lines[0].strip() == "slave" and int(lines[2].strip()) == master:
                return p
        return None

    def kill(self, port):
        self.procs[port].send_signal(signal.SIGKILL)
        self.procs[port].wait()
        del self.procs[port]

    @staticmethod
    def wait(condition, what, seconds=30):
        deadline = time.time() + seconds
        while time.time() < deadline:
            try:
                if condition():
                    return
            except (RuntimeError, subprocess.TimeoutExpired):
                pass
            time.sleep(0.1)
        raise RuntimeError("timed out: " + what)

    def stop(self):
        for proc in self.procs.values():
            proc.send_signal(signal.SIGKILL)
            proc.wait()




class ServerNode:
    """A uniws-golden-path process on a port of its own choosing, its /stats, SIGTERM to stop."""

    def __init__(self, server, *flags, env=None):
        self.proc = subprocess.Popen([server, "--port", "0", *flags], stdout=subprocess.PIPE, text=True,
                                     env=None if env is None else dict(os.environ, **env))
        self.port = int(self.proc.stdout.readline().strip().rsplit(":", 1)[1])

    def stats(self):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/stats", timeout=10) as r:
            return json.loads(r.read())

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=20)
