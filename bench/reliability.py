"""``manage.py reliability``: crash, restart, race and fuzz scenarios against
real Gust processes on a throwaway database, written up as docs/reliability.md.

Like ``compare_completion`` the command you start opens no database: it
creates a throwaway one (``bench.isolation``), re-runs itself as a child
pointed at it, and drops it at the end. The child migrates it, makes a user
with an API token (the API asks for a login, as in production), starts the
simulated outside service (``bench.outside``, whose ``/record/<key>`` counts
every call) and, per scenario, fresh web / worker / tracker processes
(``bench.procs.GustProcesses``). It only *reads* the database to count; all
work goes through the processes, over HTTP.

What the numbers mean (the same in every table):

- started: executions that exist (POST answered 201, or created without an answer);
- finished: of those, terminal (SUCCESS, ERROR, CANCELLED) when the scenario's bound ended;
- stuck: not terminal at the bound (PAUSED counts: nothing will resume it);
- lost: the action never reached the outside service, or its result never
  came back (the action ended in ERROR without the service's answer, e.g. failed
  by the overdue sweep) -- the execution may still be finished;
- duplicated: the outside service was called more than once for one action
  execution (one task with one action per execution, so calls are counted per
  execution id), or a completion was applied twice;
- inputs fuzzed, 5xx seen, requests refused (4xx answers, and connections refused).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path

import psutil
import requests

from bench import isolation
from bench.procs import ROOT, GustProcesses, orphan_guard

SCENARIOS = (
    "worker_kill9",
    "queue_backlog",
    "web_kill9",
    "worker_sigterm",
    "stop_all",
    "completions",
    "fuzz_parser",
    "fuzz_api",
)
TITLES = {
    "worker_kill9": "kill -9 of a worker mid-action",
    "queue_backlog": "a queue deeper than the worker deadline (no crash)",
    "web_kill9": "kill -9 of the web process during POSTs",
    "worker_sigterm": "SIGTERM of one of three workers under load",
    "stop_all": "stop all, start one",
    "completions": "concurrent duplicate and conflicting completions",
    "fuzz_parser": "property-based fuzzing of the definition parser (hypothesis)",
    "fuzz_api": "fuzzing the HTTP API (schemathesis)",
}
V2_SCHEMA = ROOT / "api" / "openapi_v2.yaml"  # /v2's OpenAPI document, as Gust serves it at /api/schema/v2
USER = "reliability"


@dataclass
class Options:
    quick: bool = False
    scenarios: list[str] = field(default_factory=lambda: list(SCENARIOS))
    broker: str = "orm"
    # counts
    worker_kill_n: int = 50
    backlog_n: int = 40
    web_posts: int = 200
    sigterm_n: int = 60
    stop_all_n: int = 40
    completions: int = 1000
    completion_actions: int = 100
    completion_procs: int = 4
    parser_examples: int = 2000
    api_examples: int = 40  # per operation and generation mode
    # seconds, shorter than production's but in its order: lease 30 < Q timeout 300 < retry 360 <
    # redispatch 300..queue deadline 3600
    action_s: float = 1.0  # how long the outside service holds each std.http call
    q_timeout: int = 10
    q_retry: int = 12
    worker_lease: float = 3.0
    worker_redispatch_after: float = 15.0
    worker_queue_timeout: float = 120.0
    worker_stop_timeout: float = 10.0
    query_interval: float = 0.5  # the tracker cycle, which runs the overdue sweep

    @classmethod
    def quick_options(cls, **given) -> Options:
        o = cls(
            quick=True,
            worker_kill_n=10,
            backlog_n=16,
            web_posts=40,
            sigterm_n=12,
            stop_all_n=10,
            completions=100,
            completion_actions=20,
            completion_procs=2,
            parser_examples=150,
            api_examples=3,
            action_s=0.5,
            q_timeout=3,
            q_retry=4,
            worker_lease=2.0,
            worker_redispatch_after=6.0,
            worker_queue_timeout=60.0,
            worker_stop_timeout=5.0,
        )
        for k, v in given.items():
            if v is not None:
                setattr(o, k, v)
        return o

    def as_json(self) -> dict:
        return asdict(self)


# --- workflows ----------------------------------------------------------------


def workflow_yaml(record_url: str) -> str:
    """The outside service's address is written into the definitions, not taken
    from input, so no request (the fuzzer's included) can point an action at
    another host."""
    return f"""version: '2.0'
rel_http:
  description: one std.http call to the recording service, keyed by the execution id
  input:
    - sleep: 0
  tasks:
    call:
      action: std.http
      input:
        url: "{record_url}/record/<% execution().id %>?sleep=<% $.sleep %>"
        method: POST
        timeout: 120
rel_async:
  description: an async action completed through the API, then one more task
  tasks:
    wait:
      action: std.async_noop
      on-complete: [after]
    after:
      action: std.noop
"""


# --- shared plumbing ------------------------------------------------------------


class ScenarioFailure(Exception):
    """The scenario could not run (a process did not start, ...): not a finding."""


@dataclass
class Ctx:
    opts: Options
    scratch: Path
    env: dict[str, str]
    outside: object  # bench.driver.Outside
    token: str
    say: Callable[[str], None]

    def procs(self, name: str) -> GustProcesses:
        d = self.scratch / name
        d.mkdir(parents=True, exist_ok=True)
        p = GustProcesses(d, self.env, broker=self.opts.broker)
        o = self.opts
        p.env.update(
            GUST_API_AUTH="1",  # GustProcesses opens the API; the report runs it as production does
            GUST_QUEUE=f"gust-reliab-{os.getpid()}-{name}",
            GUST_WORKER_LEASE=str(o.worker_lease),
            GUST_WORKER_REDISPATCH_AFTER=str(o.worker_redispatch_after),
            GUST_WORKER_QUEUE_TIMEOUT=str(o.worker_queue_timeout),
            GUST_WORKER_STOP_TIMEOUT=str(o.worker_stop_timeout),
            GUST_Q_TIMEOUT=str(o.q_timeout),
            GUST_Q_RETRY=str(o.q_retry),
            GUST_QUERY_INTERVAL=str(o.query_interval),
        )
        return p

    def headers(self) -> dict[str, str]:
        return {"X-Auth-Token": self.token}


def spawn_worker(procs: GustProcesses, n: int, workers: int = 2):
    return procs._spawn(
        "worker", [sys.executable, "manage.py", "worker"], {"GUST_WORKERS": str(workers)}, log_name=f"worker-{n}"
    )


def wait_started(proc, timeout: float = 60.0) -> None:
    """Until a worker's log says its cluster runs (django-q2 logs nothing at
    WARNING; the lifecycle row is the sign)."""
    from workflows.models import EngineProcess

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not proc.alive():
            raise ScenarioFailure(f"the {proc.role} exited ({proc.popen.returncode}):\n{proc.log_tail()}")
        if EngineProcess.objects.filter(name__contains=f":{proc.pid}:", stopped_at__isnull=True).exists():
            return
        time.sleep(0.1)
    raise ScenarioFailure(f"the {proc.role} (pid {proc.pid}) did not register within {timeout:.0f} s")


def kill9_tree(pid: int) -> int:
    """SIGKILL a process and everything it started: a crash, not a shutdown."""
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.NoSuchProcess:
        return 0
    for p in procs:
        try:
            p.send_signal(signal.SIGKILL)
        except psutil.NoSuchProcess:
            pass
    psutil.wait_procs(procs, timeout=10)
    return len(procs)


@contextmanager
def running(ctx: Ctx, name: str, pool_workers: int | None = None, stop_timeout: float | None = None):
    """Fresh web, worker and tracker for one scenario; all stopped at the end
    (SIGTERM, then SIGKILL of what is left after ``stop_timeout``)."""
    o = ctx.opts
    procs = ctx.procs(name)
    if pool_workers:
        procs.env["GUST_WORKERS"] = str(pool_workers)
    try:
        procs.start_web_and_worker()
        procs.start_tracker(o.query_interval, 4, False)
        yield procs
    finally:
        procs.stop_all(timeout=stop_timeout or o.worker_stop_timeout + 10)


def post_execution(
    session: requests.Session, ctx: Ctx, url: str, workflow: str, wf_input: dict, description: str = ""
) -> requests.Response:
    body = {"workflow_name": workflow, "input": wf_input, "description": description}
    return session.post(f"{url}/v2/executions", json=body, headers=ctx.headers(), timeout=120)


def submit(ctx: Ctx, url: str, n: int, wf_input: dict, tag: str, threads: int = 4) -> tuple[list[str], Counter]:
    """Start ``n`` rel_http executions; returns their ids and the answer codes."""
    local = threading.local()
    codes: Counter = Counter()

    def one(i: int) -> str | None:
        s = getattr(local, "s", None) or requests.Session()
        local.s = s
        resp = post_execution(s, ctx, url, "rel_http", wf_input, f"{tag}-{i}")
        codes[resp.status_code] += 1
        return resp.json()["id"] if resp.status_code == 201 else None

    with ThreadPoolExecutor(threads) as pool:
        ids = [x for x in pool.map(one, range(n)) if x]
    return ids, codes


def records(ctx: Ctx) -> dict[str, int]:
    return ctx.outside.http.get(f"{ctx.outside.url}/_bench/records", timeout=30).json()["records"]


def wait_calls(ctx: Ctx, ids: list[str], at_least: int, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while True:
        got = sum(1 for i in ids if records(ctx).get(i))
        if got >= at_least or time.monotonic() > deadline:
            return got
        time.sleep(0.05)


def states(ids: list[str]) -> dict[str, str]:
    from workflows.models import WorkflowExecution

    out = {}
    for i in range(0, len(ids), 400):
        out.update(WorkflowExecution.objects.filter(id__in=ids[i : i + 400]).values_list("id", "state"))
    return out


def wait_terminal(ids: list[str], bound_s: float, say, label: str, min_s: float = 0.0) -> float:
    """Until every execution is terminal (and at least ``min_s`` passed), or
    the bound. Progress every 5 s. Returns the seconds waited."""
    from core.states import TERMINAL

    t0 = time.monotonic()
    last = 0.0
    while True:
        st = states(ids)
        open_ = sum(1 for i in ids if st.get(i) not in TERMINAL)
        waited = time.monotonic() - t0
        if (open_ == 0 and waited >= min_s) or waited >= bound_s:
            return waited
        if waited - last >= 5:
            say(f"[{label}]   {waited:5.0f} s: {len(ids) - open_}/{len(ids)} terminal (bound {bound_s:.0f} s)")
            last = waited
        time.sleep(0.25)


def http_outcome(ctx: Ctx, ids: list[str]) -> dict:
    """started / finished / stuck / lost / duplicated for rel_http executions,
    read from the database and the recording service."""
    from core.states import TERMINAL, State
    from workflows.models import ActionExecution, WorkflowExecution

    calls = records(ctx)
    rows = {}
    for i in range(0, len(ids), 400):
        for ex_id, st, info in WorkflowExecution.objects.filter(id__in=ids[i : i + 400]).values_list(
            "id", "state", "state_info"
        ):
            rows[ex_id] = (st, info)
    actions = {}
    for i in range(0, len(ids), 400):
        for ex_id, st, info in ActionExecution.objects.filter(
            workflow_execution_id__in=ids[i : i + 400], name="std.http"
        ).values_list("workflow_execution_id", "state", "state_info"):
            actions[ex_id] = (st, info)
    # An action whose worker died mid-call ends in ERROR "Worker lost ..." by
    # design (its effect may have happened; only a task's retry may run it
    # again): reported to the user with its reason, so not silently lost.
    worker_lost = [
        i
        for i in ids
        if actions.get(i, (None, None))[0] == State.ERROR and (actions[i][1] or "").startswith("Worker lost")
    ]
    result_lost = [
        i for i in ids if calls.get(i) and actions.get(i, (None,))[0] == State.ERROR and i not in worker_lost
    ]
    # A worker killed between its claim and its call leaves a "Worker lost"
    # action that never reached the service: reported with its reason too.
    never_ran = [i for i in ids if not calls.get(i) and i not in worker_lost]
    dup = {i: calls[i] for i in ids if calls.get(i, 0) > 1}
    stuck = [i for i in ids if rows.get(i, (None,))[0] not in TERMINAL]
    by_state = Counter(rows.get(i, ("(missing)",))[0] for i in ids)
    reasons = Counter(_short(actions[i][1]) for i in ids if i in actions and actions[i][0] == State.ERROR)
    return {
        "started": len(ids),
        "finished": len(ids) - len(stuck),
        "stuck": len(stuck),
        "lost": len(never_ran) + len(result_lost),
        "duplicated": len(dup),
        "by_state": dict(by_state),
        "never_ran": len(never_ran),
        "result_lost": len(result_lost),
        "failed_worker_lost": len(worker_lost),
        "calls_total": sum(calls.get(i, 0) for i in ids),
        "duplicate_calls": {k: v for k, v in list(dup.items())[:10]},
        "error_reasons": dict(reasons.most_common(5)),
        "stuck_sample": [
            {"id": i, "state": rows.get(i, (None,))[0], "action": actions.get(i, (None,))[0]} for i in stuck[:5]
        ],
    }


def _code_counts(out: dict, codes: Counter) -> dict:
    out["five_xx"] = sum(v for c, v in codes.items() if c >= 500)
    out["refused"] = sum(v for c, v in codes.items() if 400 <= c < 500)
    return out


def _short(text, n: int = 160) -> str:
    """One line for the report: an HTML error page becomes its title."""
    text = str(text or "")
    m = re.search(r"<title>(.*?)</title>", text, re.S)
    if m:
        text = f"HTML page: {m.group(1)}"
    text = " ".join(text.split()).replace("`", "'")
    return text if len(text) <= n else text[:n] + "..."


# --- parent ----------------------------------------------------------------------


def kill_leftovers(marker: str) -> int:
    """SIGKILL every process of this run still alive once the child exited
    (a child killed itself cannot stop the web/worker/tracker it started in
    their own sessions). They are recognised by the throwaway database named
    in their environment, which only this run's processes carry."""
    killed = 0
    for p in psutil.process_iter(["pid"]):
        if p.pid == os.getpid():
            continue
        try:
            if p.environ().get(isolation.ENV_EXPECTED_DB) == marker:
                p.kill()
                killed += 1
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            continue
    return killed


def run_parent(
    o: Options, database: str, pg_url: str | None, keep: bool, say: Callable[[str], None]
) -> tuple[dict | None, int | None, str]:
    """Create the throwaway database, run the child on it, drop it. Returns
    (the child's result, its exit code, the end of its log)."""
    env = dict(os.environ)
    if database == "postgres":
        env["DATABASE_URL"] = pg_url or "postgres://postgres@127.0.0.1:5432/postgres"
    else:
        env.pop("DATABASE_URL", None)
    db = isolation.create(env)
    say(f"reliability: {db.describe()}, {o.broker} broker")
    result_path = db.tmpdir / "result.json"
    child_log = db.tmpdir / "child.log"
    argv = [
        sys.executable,
        str(ROOT / "manage.py"),
        "reliability",
        "--child",
        str(result_path),
        "--options-json",
        json.dumps(o.as_json()),
    ]
    cenv = dict(db.env, DJANGO_SETTINGS_MODULE="config.settings", PYTHONUNBUFFERED="1")
    cenv.pop("GUST_SYNC_WORKER", None)
    rc = None
    try:
        with open(child_log, "w") as log:
            proc = subprocess.Popen(
                argv, env=cenv, cwd=ROOT, stdout=subprocess.PIPE, stderr=log, text=True, preexec_fn=orphan_guard()
            )
            for line in proc.stdout:
                say(line.rstrip("\n"))
            rc = proc.wait()
        result = json.loads(result_path.read_text()) if result_path.exists() else None
        tail = "".join(child_log.read_text(errors="replace").splitlines(True)[-40:])
    finally:
        left = kill_leftovers(db.env[isolation.ENV_EXPECTED_DB])
        if left:
            say(f"reliability: killed {left} process(es) the child left behind (it did not stop them itself)")
        db.drop(keep=keep)
    say(f"reliability: kept {db.tmpdir}" if keep else "reliability: dropped the throwaway database")
    return result, rc, tail
