"""Real Gust processes for ``manage.py compare_completion``, started the way
``bin/run`` starts them, plus their CPU time (psutil) and SQL counts
(bench/querycount.py).

- web: ``gunicorn config.wsgi --workers 2 --threads 4 --access-logfile -`` on a free port
- worker: ``manage.py worker`` (django-q2 cluster; ORM broker unless told ``redis``)
- tracker: ``manage.py run_tracker`` with GUST_QUERY_INTERVAL / GUST_THREAD_POOL_SIZE
  (and GUST_TRACKER_QUERIES for the batch query function) set per measurement

Every process runs in its own session (process group) with stdout/stderr in
a log file of the run's scratch directory; ``stop()`` sends SIGTERM (the
graceful shutdown each command implements) and SIGKILLs the group after a
bound. Every process a benchmark starts also gets SIGTERM when the
benchmark itself dies (``orphan_guard``), so a run stopped by Ctrl-C, a
kill or a CI timeout leaves no Gust processes behind.
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import requests

from bench import querycount

ROOT = Path(__file__).resolve().parent.parent
WEB_WORKERS = 2  # as bin/run
WEB_THREADS = 4


_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform == "linux" else None
_PR_SET_PDEATHSIG = 1


def orphan_guard():
    """The ``preexec_fn`` for a benchmark's child: the kernel sends the child
    SIGTERM (the graceful stop every Gust command implements) when the process
    that started it dies, however it dies; a parent already gone by then is
    caught too. Linux only; elsewhere nothing happens. Start children from the
    main thread: the signal follows the thread that forked."""
    parent = os.getpid()

    def die_with_parent() -> None:
        if _LIBC is None:
            return
        _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:
            os.kill(os.getpid(), signal.SIGTERM)

    return die_with_parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tree_cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process and all its descendants, the
    ones already reaped included (their time is in their parent's children_*)."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0.0
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += t.user + t.system + t.children_user + t.children_system
    return total


@dataclass
class Proc:
    role: str
    argv: list[str]
    popen: subprocess.Popen
    log: Path
    started: float = field(default_factory=time.time)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def cpu_s(self) -> float:
        return tree_cpu_s(self.pid) if self.alive() else 0.0

    def log_tail(self, lines: int = 30) -> str:
        if not self.log.exists():
            return ""
        with open(self.log, errors="replace") as f:
            tail = deque((ln for ln in f if " gust.trace " not in ln), maxlen=lines)
        return "".join(tail).rstrip()

    def stop(self, timeout: float = 20.0) -> int | None:
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(self.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.popen.wait(5)
        else:
            self.popen.wait(5)
        # Whatever the group left behind (a qcluster child that outlived its parent).
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        return self.popen.returncode


class GustProcesses:
    """The web, worker and tracker processes of one benchmark run."""

    def __init__(
        self,
        scratch: Path,
        base_env: dict[str, str],
        broker: str = "orm",
        redis_url: str | None = None,
        query_shapes: bool = False,
    ):
        self.scratch = scratch
        self.queries_dir = scratch / "queries"
        self.queries_dir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.broker = broker
        env = dict(base_env)
        env.pop("GUST_SYNC_WORKER", None)  # the test settings' inline worker must not leak in
        env.pop("GUST_TRACKER_QUERIES", None)
        env.update(
            DJANGO_SETTINGS_MODULE="config.settings",
            GUST_PUBLIC_URL=self.url,
            GUST_BROKER=broker,
            GUST_QUEUE=f"gust-compare-{os.getpid()}",
            GUST_COUNT_QUERIES_DIR=str(self.queries_dir),
            PYTHONUNBUFFERED="1",
            # The throwaway database has no users: the driver starts executions
            # without a login (as bench does). Callbacks carry their own signed token.
            GUST_API_AUTH="0",
            # The outside service and Gust itself listen on 127.0.0.1, which
            # the egress policy refuses by default.
            GUST_EGRESS_ALLOWED_CIDRS="127.0.0.0/8,::1",
        )
        if query_shapes:
            env["GUST_COUNT_QUERIES_SHAPES"] = "1"
        if broker == "redis":
            env["REDIS_URL"] = redis_url or env.get("REDIS_URL") or "redis://127.0.0.1:6379/0"
        self.env = env
        self.web: Proc | None = None
        self.worker: Proc | None = None
        self.tracker: Proc | None = None
        self.more_trackers: list[Proc] = []  # a second (third...) tracker sharing the work
        self._tracker_runs = 0
        # The benchmark's own processes (outside service, driver): measured so
        # the rest of the machine's load can be told apart (see machine_busy_s).
        self.bench_pids: dict[str, int] = {}

    # -- starting --

    def _spawn(
        self, role: str, argv: list[str], extra_env: dict[str, str] | None = None, log_name: str | None = None
    ) -> Proc:
        env = {**self.env, "GUST_PROCESS_ROLE": role, **(extra_env or {})}
        log = self.scratch / f"{log_name or role}.log"
        with open(log, "w") as out:
            popen = subprocess.Popen(
                argv,
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=orphan_guard(),
            )
        return Proc(role, argv, popen, log)

    def start_web_and_worker(self, timeout: float = 60.0) -> None:
        self.worker = self._spawn("worker", [sys.executable, "manage.py", "worker"])
        self.start_web(timeout, watch=(self.worker,))

    def start_web(self, timeout: float = 60.0, log_name: str | None = None, watch: tuple = ()) -> Proc:
        """(Re)start gunicorn on this run's port; returns once it answers.
        Raises if it, or any process in ``watch``, exits meanwhile."""
        self.web = self._spawn(
            "web",
            [
                sys.executable,
                "-m",
                "gunicorn",
                "config.wsgi",
                "--bind",
                f"127.0.0.1:{self.port}",
                "--workers",
                str(WEB_WORKERS),
                "--threads",
                str(WEB_THREADS),
                "--access-logfile",
                "-",
                "--logger-class",
                "config.gunicorn_log.AccessLog",
                "--log-level",
                "warning",
            ],
            log_name=log_name,
        )
        deadline = time.monotonic() + timeout
        while True:
            for p in (self.web, *watch):
                if not p.alive():
                    raise RuntimeError(f"the {p.role} process exited ({p.popen.returncode}):\n{p.log_tail()}")
            try:
                if requests.get(f"{self.url}/versions", timeout=2).status_code == 200:
                    return self.web
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"the web process did not answer within {timeout:.0f} s:\n{self.web.log_tail()}")
            time.sleep(0.1)

    def start_tracker(
        self, query_interval: float, pool_size: int, batch_queries: bool, timeout: float = 60.0, count: int = 1
    ) -> Proc:
        """(Re)start the tracker (``count`` processes sharing the work); returns
        once each logged that it started."""
        self.stop_tracker()
        extra = {"GUST_QUERY_INTERVAL": str(query_interval), "GUST_THREAD_POOL_SIZE": str(pool_size)}
        if batch_queries:
            extra["GUST_TRACKER_QUERIES"] = "gust.http_job=bench.queries.batch_status"
        started = []
        for _ in range(count):
            self._tracker_runs += 1
            started.append(
                self._spawn(
                    "tracker",
                    [sys.executable, "manage.py", "run_tracker"],
                    extra,
                    log_name=f"tracker-{self._tracker_runs}",
                )
            )
        self.tracker, self.more_trackers = started[0], started[1:]
        deadline = time.monotonic() + timeout
        for proc in started:
            while " started: " not in proc.log.read_text(errors="replace"):
                if not proc.alive():
                    raise RuntimeError(f"the tracker exited ({proc.popen.returncode}):\n{proc.log_tail()}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the tracker did not start within {timeout:.0f} s:\n{proc.log_tail()}")
                time.sleep(0.05)
        return self.tracker

    def stop_tracker(self) -> None:
        for proc in [self.tracker, *self.more_trackers]:
            if proc is not None:
                proc.stop()
        self.tracker, self.more_trackers = None, []

    def stop_all(self, timeout: float = 20.0) -> dict[str, int | None]:
        codes = {}
        for attr in ("tracker", "worker", "web"):
            p = getattr(self, attr)
            if p is not None:
                codes[attr] = p.stop(timeout)
                setattr(self, attr, None)
        return codes

    def check_alive(self) -> None:
        for p in (self.web, self.worker, self.tracker, *self.more_trackers):
            if p is not None and not p.alive():
                raise RuntimeError(f"the {p.role} process exited ({p.popen.returncode}):\n{p.log_tail()}")

    # -- measuring --

    def cpu(self) -> dict[str, float]:
        cpu = {role: (p.cpu_s() if p else 0.0) for role, p in (("web", self.web), ("worker", self.worker))}
        cpu["tracker"] = sum(p.cpu_s() for p in (self.tracker, *self.more_trackers) if p is not None)
        return cpu

    def queries(self) -> dict[str, dict[str, int]]:
        querycount.request_flush(self.queries_dir)
        return querycount.read_totals(self.queries_dir)

    def snapshot(self) -> Snapshot:
        others = {name: tree_cpu_s(pid) for name, pid in self.bench_pids.items()}
        me = psutil.Process().cpu_times()  # the driver alone: its children are the processes measured
        others["driver"] = me.user + me.system
        return Snapshot(
            time.time(),
            self.cpu(),
            self.queries(),
            self.tracker.pid if self.tracker else None,
            others,
            machine_busy_s(),
        )


def machine_busy_s() -> float:
    """CPU seconds the whole machine spent busy (all cores, all processes)."""
    t = psutil.cpu_times()
    return sum(getattr(t, k, 0.0) for k in ("user", "nice", "system", "irq", "softirq", "steal"))


@dataclass
class Snapshot:
    t: float
    cpu: dict[str, float]
    queries: dict[str, dict[str, int]]
    tracker_pid: int | None
    bench_cpu: dict[str, float] = field(default_factory=dict)
    machine_busy: float = 0.0

    def delta(self, later: Snapshot) -> dict:
        """CPU seconds and SQL counts from this snapshot to ``later``, per role.
        A tracker that started after this snapshot counts from zero."""
        cpu = {}
        for role in ("web", "worker", "tracker"):
            before = self.cpu.get(role, 0.0)
            if role == "tracker" and self.tracker_pid != later.tracker_pid:
                before = 0.0
            cpu[role] = round(max(0.0, later.cpu.get(role, 0.0) - before), 3)
        cpu["total"] = round(sum(cpu.values()), 3)
        roles = set(self.queries) | set(later.queries)
        queries = {}
        for role in sorted(roles):
            a, b = self.queries.get(role, {}), later.queries.get(role, {})
            queries[role] = {k: b.get(k, 0) - a.get(k, 0) for k in ("statements", "commits", *querycount.KINDS)}
        kinds = ("statements", "commits", *querycount.KINDS)
        queries["total"] = {k: sum(q[k] for q in queries.values()) for k in kinds}
        seconds = later.t - self.t
        bench = {k: round(max(0.0, later.bench_cpu.get(k, 0.0) - v), 3) for k, v in self.bench_cpu.items()}
        busy = later.machine_busy - self.machine_busy
        out = {
            "seconds": round(seconds, 3),
            "cpu_s": cpu,
            "queries": queries,
            # Cores busy on the whole machine, and those busy with neither Gust nor
            # the benchmark's own processes: other people's work, i.e. noise.
            "machine": {
                "busy_cores": round(busy / seconds, 2) if seconds > 0 else None,
                "other_cores": round(max(0.0, busy - cpu["total"] - sum(bench.values())) / seconds, 2)
                if seconds > 0
                else None,
                "bench_cpu_s": bench,
            },
        }
        shapes = {}
        for role in sorted(roles):
            a, b = self.queries.get(role, {}).get("shapes", {}), later.queries.get(role, {}).get("shapes")
            if b:
                diff = sorted(((n - a.get(s, 0), s) for s, n in b.items() if n - a.get(s, 0) > 0), reverse=True)
                shapes[role] = [{"n": n, "sql": s} for n, s in diff[:TOP_SHAPES]]
        if shapes:
            out["top_statements"] = shapes
        return out


TOP_SHAPES = 15
