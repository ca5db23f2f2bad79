"""Several "hosts" on one machine for ``manage.py multihost_bench``: a
network namespace per host (``ip netns``), each with a veth pair to a bridge
in the root namespace, so the web, worker and tracker processes talk to each
other and to PostgreSQL and Redis over a virtual network instead of loopback.

    root namespace: bridge gso-br 10.77.0.1/24
      - socat 10.77.0.1:15432 -> 127.0.0.1:5432 (PostgreSQL), 10.77.0.1:16379 -> 127.0.0.1:6379 (Redis)
    netns gso-web0     10.77.0.10  (gunicorn)
    netns gso-worker0  10.77.0.20  (manage.py worker)   <- stopped mid-run
    netns gso-worker1  10.77.0.21  (manage.py worker)
    netns gso-tracker0 10.77.0.30  (manage.py run_tracker)

PostgreSQL and Redis keep listening on 127.0.0.1 only; the forwarders are
the one way in from the namespaces (the servers see them as local clients).
Nothing else of the machine changes: no sysctl, no firewall rule. Every
namespace, link and forwarder made here is removed by ``Hosts.close`` (also
on failure; ``cleanup`` removes leftovers of an earlier run that was killed),
all named ``gso-*``. Needs root and ``ip``; ``available()`` says whether it
can work here.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from urllib.parse import urlsplit, urlunsplit

from bench.procs import orphan_guard

PREFIX = "gso-"
BRIDGE = "gso-br"
NET = "10.77.0"
GATEWAY = f"{NET}.1"
PG_PORT, REDIS_PORT = 15432, 16379
ROLE_BASE = {"web": 10, "worker": 20, "tracker": 30}
ROLE_LINK = {"web": "web", "worker": "wk", "tracker": "tr"}  # veth names: 15 characters at most


def available() -> str | None:
    """None when namespaces can be made here, else why not."""
    if os.geteuid() != 0:
        return "not root"
    if not shutil.which("ip"):
        return "no ip command"
    if not shutil.which("socat"):
        return "no socat (the forwarder to PostgreSQL and Redis)"
    probe = f"{PREFIX}probe{os.getpid()}"[:15]
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode:
        return f"ip netns add failed: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(["ip", *args], capture_output=True, text=True)
    if check and done.returncode:
        raise RuntimeError(f"ip {' '.join(args)}: {done.stderr.strip()}")
    return done


def cleanup() -> list[str]:
    """Remove every gso-* namespace and link (left by a run that was killed)."""
    removed = []
    for line in _ip("netns", "list", check=False).stdout.splitlines():
        name = line.split()[0] if line.split() else ""
        if name.startswith(PREFIX):
            subprocess.run(["ip", "netns", "pids", name], capture_output=True)
            for pid in subprocess.run(["ip", "netns", "pids", name], capture_output=True, text=True).stdout.split():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
            _ip("netns", "del", name, check=False)
            removed.append(name)
    for line in _ip("-o", "link", "show", check=False).stdout.splitlines():
        parts = line.split(":")
        if len(parts) > 1:
            name = parts[1].strip().split("@")[0]
            if name.startswith(PREFIX):
                _ip("link", "del", name, check=False)
                removed.append(name)
    return removed


class Hosts:
    """The namespaces of one run: ``roles`` maps a role to how many hosts it gets."""

    def __init__(self, roles: dict[str, int], pg_url: str | None, redis_url: str | None):
        self.roles = roles
        self.pg_url, self.redis_url = pg_url, redis_url
        self.names: list[str] = []
        self.links: list[str] = []
        self.forwarders: list[subprocess.Popen] = []
        self.down: list[str] = []

    # -- set-up and tear-down --

    def __enter__(self):
        cleanup()
        try:
            _ip("link", "add", BRIDGE, "type", "bridge")
            self.links.append(BRIDGE)
            _ip("addr", "add", f"{GATEWAY}/24", "dev", BRIDGE)
            _ip("link", "set", BRIDGE, "up")
            for role, count in self.roles.items():
                for i in range(count):
                    self._add_host(role, i)
            self._forward(PG_PORT, self.pg_url, 5432)
            self._forward(REDIS_PORT, self.redis_url, 6379)
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def _add_host(self, role: str, i: int) -> None:
        ns, addr = self.ns(role, i), self.address(role, i)
        outside = self.link(role, i)
        inside = f"{outside}p"
        _ip("netns", "add", ns)
        self.names.append(ns)
        _ip("link", "add", outside, "type", "veth", "peer", "name", inside)
        self.links.append(outside)
        _ip("link", "set", inside, "netns", ns)
        _ip("link", "set", outside, "master", BRIDGE)
        _ip("link", "set", outside, "up")
        _ip("-n", ns, "link", "set", "lo", "up")
        _ip("-n", ns, "addr", "add", f"{addr}/24", "dev", inside)
        _ip("-n", ns, "link", "set", inside, "up")
        _ip("-n", ns, "route", "add", "default", "via", GATEWAY)

    def _forward(self, port: int, url: str | None, default_port: int) -> None:
        if not url:
            return
        u = urlsplit(url)
        target = f"{u.hostname or '127.0.0.1'}:{u.port or default_port}"
        # A host stopped mid-request (its link down) never acknowledges the
        # server's answer; TCP_USER_TIMEOUT (level 6, option 18: 5 s) and
        # keepalives on the hosts' side make its forwarder give up and close
        # the server's session, so its locks go. The server's own timeouts
        # (config/settings.py) only see the forwarder, which is alive.
        proc = subprocess.Popen(
            [
                "socat",
                f"TCP-LISTEN:{port},bind={GATEWAY},fork,reuseaddr,keepalive,keepidle=2,"
                "keepintvl=1,keepcnt=3,setsockopt-int=6:18:5000",
                f"TCP:{target}",
            ],
            preexec_fn=orphan_guard(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        self.forwarders.append(proc)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if (
                subprocess.run(
                    ["ip", "netns", "exec", self.names[0], "bash", "-c", f"exec 3<>/dev/tcp/{GATEWAY}/{port}"],
                    capture_output=True,
                ).returncode
                == 0
            ):
                return
            time.sleep(0.1)
        raise RuntimeError(f"the forwarder {GATEWAY}:{port} -> {target} does not answer from {self.names[0]}")

    def close(self) -> None:
        for proc in self.forwarders:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        self.forwarders = []
        for ns in reversed(self.names):
            for pid in subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout.split():
                try:
                    os.kill(int(pid), signal.SIGKILL)
                except (ProcessLookupError, ValueError):
                    pass
            _ip("netns", "del", ns, check=False)
        self.names = []
        for link in reversed(self.links):
            _ip("link", "del", link, check=False)
        self.links = []

    # -- where things are --

    @staticmethod
    def ns(role: str, i: int) -> str:
        return f"{PREFIX}{role}{i}"

    @staticmethod
    def link(role: str, i: int) -> str:
        return f"{PREFIX}{ROLE_LINK[role]}{i}"

    @staticmethod
    def address(role: str, i: int) -> str:
        return f"{NET}.{ROLE_BASE[role] + i}"

    def prefix(self, role: str, i: int) -> list[str]:
        """The argv prefix that runs a process on host ``i`` of ``role``."""
        return ["ip", "netns", "exec", self.ns(role, i % self.roles.get(role, 1))]

    def bind(self, port: int) -> str:
        return f"{self.address('web', 0)}:{port}"

    def web_url(self, port: int) -> str:
        return f"http://{self.address('web', 0)}:{port}"

    def environ(self, env: dict) -> dict:
        """The processes' environment on the hosts: PostgreSQL and Redis through
        the forwarders, the web host's address allowed."""
        env = dict(env)
        if env.get("DATABASE_URL", "").startswith("postgres"):
            env["DATABASE_URL"] = _with_host(env["DATABASE_URL"], GATEWAY, PG_PORT)
        if env.get("REDIS_URL"):
            env["REDIS_URL"] = _with_host(env["REDIS_URL"], GATEWAY, REDIS_PORT)
        env["GUST_ALLOWED_HOSTS"] = f"{self.address('web', 0)},127.0.0.1,localhost"
        env["GUST_EGRESS_ALLOWED_CIDRS"] = f"{NET}.0/24,127.0.0.0/8"
        self._root_env = {"DATABASE_URL": self.pg_url, "REDIS_URL": self.redis_url}
        return env

    def root_environ(self, env: dict) -> dict:
        """The same environment for a process of the root namespace (the check)."""
        return {**env, **{k: v for k, v in self._root_env.items() if v}}

    def kill_host(self, role: str, i: int, proc) -> dict:
        """Stop a host as a crash would: SIGKILL every process in its namespace
        (the worker, its pusher, monitor and pool), then its link down."""
        ns = self.ns(role, i)
        pids = [
            int(p) for p in subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True).stdout.split()
        ]
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        link = self.link(role, i)
        _ip("link", "set", link, "down", check=False)
        self.down.append(link)
        return {"host": ns, "processes_killed": len(pids), "link_down": link, "at": time.time()}


def _with_host(url: str, host: str, port: int) -> str:
    u = urlsplit(url)
    auth = u.netloc.rpartition("@")[0]
    return urlunsplit(u._replace(netloc=f"{auth + '@' if auth else ''}{host}:{port}"))
