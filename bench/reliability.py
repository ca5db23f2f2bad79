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
import random
import signal
import subprocess
import sys
import threading
import time
import traceback
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import psutil
import requests

from bench import isolation
from bench.procs import ROOT, GustProcesses

SCENARIOS = ("worker_kill9", "web_kill9", "worker_sigterm", "stop_all", "completions", "fuzz_parser", "fuzz_api")
TITLES = {
    "worker_kill9": "kill -9 of a worker mid-action",
    "web_kill9": "kill -9 of the web process during POSTs",
    "worker_sigterm": "SIGTERM of one of three workers under load",
    "stop_all": "stop all, start one",
    "completions": "concurrent duplicate and conflicting completions",
    "fuzz_parser": "property-based fuzzing of the definition parser (hypothesis)",
    "fuzz_api": "fuzzing the HTTP API (schemathesis)",
}
V2_SCHEMA = Path(__file__).with_name("openapi_v2.yaml")
USER = "reliability"


@dataclass
class Options:
    quick: bool = False
    scenarios: list[str] = field(default_factory=lambda: list(SCENARIOS))
    broker: str = "orm"
    # counts
    worker_kill_n: int = 50
    web_posts: int = 200
    sigterm_n: int = 60
    stop_all_n: int = 40
    completions: int = 1000
    completion_actions: int = 100
    completion_procs: int = 4
    parser_examples: int = 2000
    api_examples: int = 40  # per operation and generation mode
    # seconds; the ratios are production's: Q timeout 300 < retry 360 < WORKER_ACTION_TIMEOUT 600
    action_s: float = 1.0  # how long the outside service holds each std.http call
    q_timeout: int = 10
    q_retry: int = 12
    worker_action_timeout: float = 20.0
    worker_stop_timeout: float = 10.0
    query_interval: float = 0.5  # the tracker cycle, which runs the overdue sweep

    @classmethod
    def quick_options(cls, **given) -> "Options":
        o = cls(quick=True, worker_kill_n=10, web_posts=40, sigterm_n=12, stop_all_n=10, completions=100,
                completion_actions=20, completion_procs=2, parser_examples=150, api_examples=3, action_s=0.5,
                q_timeout=3, q_retry=4, worker_action_timeout=6.0, worker_stop_timeout=5.0)
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
            GUST_WORKER_ACTION_TIMEOUT=str(o.worker_action_timeout),
            GUST_WORKER_STOP_TIMEOUT=str(o.worker_stop_timeout),
            GUST_Q_TIMEOUT=str(o.q_timeout),
            GUST_Q_RETRY=str(o.q_retry),
            GUST_QUERY_INTERVAL=str(o.query_interval),
        )
        return p

    def headers(self) -> dict[str, str]:
        return {"X-Auth-Token": self.token}


def spawn_worker(procs: GustProcesses, n: int, workers: int = 2):
    return procs._spawn("worker", [sys.executable, "manage.py", "worker"], {"GUST_WORKERS": str(workers)},
                        log_name=f"worker-{n}")


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


def start_web(procs: GustProcesses, timeout: float = 60.0) -> None:
    procs.web = procs._spawn("web", [
        sys.executable, "-m", "gunicorn", "config.wsgi", "--bind", f"127.0.0.1:{procs.port}",
        "--workers", "2", "--threads", "4", "--access-logfile", "-", "--log-level", "warning",
    ], log_name=f"web-{int(time.time() * 1000) % 100000}")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not procs.web.alive():
            raise ScenarioFailure(f"the web process exited:\n{procs.web.log_tail()}")
        try:
            if requests.get(f"{procs.url}/versions", timeout=2).status_code == 200:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise ScenarioFailure("the web process did not answer")


def post_execution(session: requests.Session, ctx: Ctx, url: str, workflow: str, wf_input: dict,
                   description: str = "") -> requests.Response:
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
        out.update(WorkflowExecution.objects.filter(id__in=ids[i:i + 400]).values_list("id", "state"))
    return out


def wait_terminal(ids: list[str], bound_s: float, say, label: str, min_s: float = 0.0) -> float:
    """Until every execution is terminal (and at least ``min_s`` passed), or
    the bound. Progress every 5 s. Returns the seconds waited."""
    from workflows.states import TERMINAL

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
    from workflows.models import ActionExecution, WorkflowExecution
    from workflows.states import TERMINAL, State

    calls = records(ctx)
    rows = {}
    for i in range(0, len(ids), 400):
        for ex_id, st, info in WorkflowExecution.objects.filter(id__in=ids[i:i + 400]).values_list(
                "id", "state", "state_info"):
            rows[ex_id] = (st, info)
    actions = {}
    for i in range(0, len(ids), 400):
        for ex_id, st, info in ActionExecution.objects.filter(
                workflow_execution_id__in=ids[i:i + 400], name="std.http").values_list(
                "workflow_execution_id", "state", "state_info"):
            actions[ex_id] = (st, info)
    never_ran = [i for i in ids if not calls.get(i)]
    result_lost = [i for i in ids if calls.get(i) and actions.get(i, (None,))[0] == State.ERROR]
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
        "calls_total": sum(calls.get(i, 0) for i in ids),
        "duplicate_calls": {k: v for k, v in list(dup.items())[:10]},
        "error_reasons": dict(reasons.most_common(5)),
        "stuck_sample": [{"id": i, "state": rows.get(i, (None,))[0],
                          "action": actions.get(i, (None,))[0]} for i in stuck[:5]],
    }


def _code_counts(out: dict, codes: Counter) -> dict:
    out["five_xx"] = sum(v for c, v in codes.items() if c >= 500)
    out["refused"] = sum(v for c, v in codes.items() if 400 <= c < 500)
    return out


def _short(text, n: int = 160) -> str:
    text = str(text or "")
    return text if len(text) <= n else text[:n] + "..."


# --- scenarios -------------------------------------------------------------------


def scenario_worker_kill9(ctx: Ctx) -> dict:
    """N executions whose std.http call the service holds for ``action_s``;
    kill -9 the worker (its whole process tree) while calls are in flight,
    start a new worker, and wait past the broker's re-delivery (``retry``) and
    the overdue sweep (WORKER_ACTION_TIMEOUT)."""
    o, say, name = ctx.opts, ctx.say, "worker_kill9"
    procs = ctx.procs(name)
    try:
        procs.start_web_and_worker()
        procs.start_tracker(o.query_interval, 4, False)
        say(f"[{name}] {o.worker_kill_n} executions, each call held {o.action_s:g} s; 2 worker processes")
        ids, codes = submit(ctx, procs.url, o.worker_kill_n, {"sleep": o.action_s}, name)
        in_flight = wait_calls(ctx, ids, max(2, o.worker_kill_n // 5), 60)
        killed_at = time.monotonic()
        n = kill9_tree(procs.worker.pid)
        calls_at_kill = sum(1 for i in ids if records(ctx).get(i))
        say(f"[{name}] kill -9 of the worker ({n} processes) with {calls_at_kill} calls made; starting a new worker")
        procs.worker = spawn_worker(procs, 2)
        bound = o.q_retry + o.worker_action_timeout + 15
        wait_terminal(ids, bound, say, name, min_s=o.q_retry + 5)
        out = http_outcome(ctx, ids)
        out.update(post_codes=dict(codes), calls_when_killed=calls_at_kill, bound_s=bound,
                   waited_s=round(time.monotonic() - killed_at, 1), killed_processes=n, in_flight=in_flight)
        return _code_counts(out, codes)
    finally:
        procs.stop_all(timeout=o.worker_stop_timeout + 10)


def scenario_web_kill9(ctx: Ctx) -> dict:
    """POSTs from 4 threads; after a third of them, kill -9 of gunicorn (master
    and workers) and a restart. A request refused at connect (never sent) is
    tried again; a request cut off mid-way is not (its outcome is unknown, as
    for any client) and is looked up by its description afterwards."""
    from workflows.models import WorkflowExecution

    o, say, name = ctx.opts, ctx.say, "web_kill9"
    procs = ctx.procs(name)
    try:
        procs.start_web_and_worker()
        procs.start_tracker(o.query_interval, 4, False)
        n = o.web_posts
        answered = Counter()
        refused = [0]
        refused_posts: set[int] = set()
        no_answer: list[int] = []
        done = [0]
        lock = threading.Lock()
        kill_after = n // 3
        killed = threading.Event()
        local = threading.local()

        def one(i: int) -> None:
            s = getattr(local, "s", None) or requests.Session()
            local.s = s
            deadline = time.monotonic() + 120
            while True:
                try:
                    resp = post_execution(s, ctx, procs.url, "rel_http", {"sleep": 0}, f"{name}-{i}")
                except requests.ConnectionError as exc:
                    s = local.s = requests.Session()
                    if _refused(exc) and time.monotonic() < deadline:
                        with lock:
                            refused[0] += 1
                            refused_posts.add(i)
                        time.sleep(0.1)
                        continue
                    with lock:
                        no_answer.append(i)
                    break
                except requests.RequestException:
                    with lock:
                        no_answer.append(i)
                    break
                with lock:
                    answered[resp.status_code] += 1
                break
            with lock:
                done[0] += 1

        say(f"[{name}] {n} POST /v2/executions from 4 threads; kill -9 of the web process after ~{kill_after}")

        def killer():
            while True:
                with lock:
                    if done[0] >= kill_after:
                        break
                time.sleep(0.01)
            killed_n = kill9_tree(procs.web.pid)
            say(f"[{name}] killed the web process ({killed_n} processes) after {done[0]} answers; restarting it")
            killed.set()
            time.sleep(1.0)
            start_web(procs)
            say(f"[{name}] web process back on {procs.url}")

        k = threading.Thread(target=killer, daemon=True)
        k.start()
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(one, range(n)))
        k.join(90)
        rows = list(WorkflowExecution.objects.filter(description__startswith=f"{name}-")
                    .values_list("id", "description"))
        per_desc = Counter(d for _, d in rows)
        ids = [i for i, _ in rows]
        wait_terminal(ids, o.worker_action_timeout + 15, say, name)
        out = http_outcome(ctx, ids)
        unanswered_created = sum(1 for i in no_answer if per_desc.get(f"{name}-{i}"))
        out["duplicated"] += sum(1 for c in per_desc.values() if c > 1)
        five = sum(v for c, v in answered.items() if c >= 500)
        four = sum(v for c, v in answered.items() if 400 <= c < 500)
        out.update(posts=n, answers=dict(answered), no_answer=len(no_answer),
                   no_answer_but_created=unanswered_created, connections_refused=refused[0],
                   posts_refused_at_connect=len(refused_posts),
                   five_xx=five, refused=four + len(refused_posts), killed=killed.is_set())
        return out
    finally:
        procs.stop_all(timeout=o.worker_stop_timeout + 10)


def _refused(exc: Exception) -> bool:
    """A connection that was never made: the request was not sent."""
    text = str(exc)
    return "Connection refused" in text or "Errno 111" in text


def scenario_worker_sigterm(ctx: Ctx) -> dict:
    """Three worker processes (2 pool workers each) under load; SIGTERM to one
    while calls are in flight. It should finish those, hand back what it
    prefetched, and exit within WORKER_STOP_TIMEOUT; the other two carry on."""
    o, say, name = ctx.opts, ctx.say, "worker_sigterm"
    procs = ctx.procs(name)
    extra = []
    try:
        procs.start_web_and_worker()
        extra = [spawn_worker(procs, 2), spawn_worker(procs, 3)]
        for p in [procs.worker, *extra]:
            wait_started(p)
        procs.start_tracker(o.query_interval, 4, False)
        say(f"[{name}] {o.sigterm_n} executions, each call held {o.action_s:g} s, 3 worker processes")
        ids, codes = submit(ctx, procs.url, o.sigterm_n, {"sleep": o.action_s}, name)
        wait_calls(ctx, ids, max(2, o.sigterm_n // 4), 60)
        victim = procs.worker
        t0 = time.monotonic()
        victim.popen.send_signal(signal.SIGTERM)
        try:
            rc = victim.popen.wait(o.worker_stop_timeout + 20)
        except subprocess.TimeoutExpired:
            rc = None
        stop_s = round(time.monotonic() - t0, 1)
        say(f"[{name}] SIGTERM to worker pid {victim.pid}: exited {rc} after {stop_s} s")
        wait_terminal(ids, o.q_retry + o.worker_action_timeout + 15, say, name, min_s=o.q_retry + 2)
        out = http_outcome(ctx, ids)
        out.update(post_codes=dict(codes), sigterm_exit_code=rc, sigterm_stop_s=stop_s)
        return _code_counts(out, codes)
    finally:
        for p in extra:
            p.stop(o.worker_stop_timeout + 10)
        procs.stop_all(timeout=o.worker_stop_timeout + 10)


def scenario_stop_all(ctx: Ctx) -> dict:
    """Load in flight, then SIGTERM to every process (the last one pauses the
    running workflows, ``paused by shutdown``), then one worker alone is
    started: it should resume exactly those and finish them."""
    from workflows.lifecycle import SHUTDOWN_TAG
    from workflows.models import WorkflowExecution

    o, say, name = ctx.opts, ctx.say, "stop_all"
    procs = ctx.procs(name)
    try:
        procs.start_web_and_worker()
        procs.start_tracker(o.query_interval, 4, False)
        say(f"[{name}] {o.stop_all_n} executions, each call held {o.action_s:g} s")
        ids, codes = submit(ctx, procs.url, o.stop_all_n, {"sleep": o.action_s}, name)
        wait_calls(ctx, ids, max(2, o.stop_all_n // 4), 60)
        codes_exit = procs.stop_all(timeout=o.worker_stop_timeout + 10)
        paused = WorkflowExecution.objects.filter(id__in=ids, state="PAUSED", state_info=SHUTDOWN_TAG).count()
        st = Counter(states(ids).values())
        say(f"[{name}] stopped all ({codes_exit}); {paused} paused by shutdown, states {dict(st)}; starting one worker")
        procs.worker = spawn_worker(procs, 2)
        wait_terminal(ids, o.q_retry + o.worker_action_timeout + 15, say, name, min_s=o.q_retry + 2)
        out = http_outcome(ctx, ids)
        out.update(post_codes=dict(codes), exit_codes=codes_exit, paused_by_shutdown=paused,
                   states_after_stop=dict(st))
        return _code_counts(out, codes)
    finally:
        procs.stop_all(timeout=o.worker_stop_timeout + 10)


def _complete_batch(url: str, token: str, jobs: list[tuple[str, str, object]], start_at: float,
                    threads: int) -> list[tuple[str, str, object, int, str]]:
    """In a separate process: PUT every completion, all threads released at
    ``start_at``. Returns (action id, state, output, status, answer's state)."""
    local = threading.local()

    def one(job):
        action_id, state, output = job
        s = getattr(local, "s", None) or requests.Session()
        local.s = s
        try:
            r = s.put(f"{url}/v2/action_executions/{action_id}", json={"state": state, "output": output},
                      headers={"X-Auth-Token": token}, timeout=120)
            try:
                answer_state = r.json().get("state", "")
            except ValueError:
                answer_state = r.text[:200]
            return action_id, state, output, r.status_code, answer_state
        except requests.RequestException as exc:
            return action_id, state, output, 0, str(exc)[:200]

    time.sleep(max(0.0, start_at - time.time()))
    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(one, jobs))


def scenario_completions(ctx: Ctx) -> dict:
    """``completion_actions`` std.async_noop actions, each completed 10 times
    at once from ``completion_procs`` processes: the same result (duplicates)
    and different ones (conflicts). Exactly one result per action must be
    stored and acknowledged; the others answer 200 (the same result) or 409;
    the next task must exist once."""
    import multiprocessing

    from django.db import connections

    from workflows.models import ActionExecution, TaskExecution
    from workflows.states import TERMINAL

    o, say, name = ctx.opts, ctx.say, "completions"
    procs = ctx.procs(name)
    try:
        procs.start_web_and_worker()
        procs.start_tracker(o.query_interval, 4, False)
        s = requests.Session()
        ex_ids = []
        for i in range(o.completion_actions):
            r = post_execution(s, ctx, procs.url, "rel_async", {}, f"{name}-{i}")
            if r.status_code != 201:
                raise ScenarioFailure(f"POST /v2/executions answered {r.status_code}: {r.text[:300]}")
            ex_ids.append(r.json()["id"])
        actions = dict(ActionExecution.objects.filter(workflow_execution_id__in=ex_ids, name="std.async_noop")
                       .values_list("id", "workflow_execution_id"))
        per = max(1, o.completions // max(1, len(actions)))
        rng = random.Random(7)
        jobs = []
        for a in actions:
            for k in range(per):
                if k % 2 == 0:
                    jobs.append((a, "SUCCESS", {"n": 1}))  # the duplicates
                elif k % 4 == 1:
                    jobs.append((a, "SUCCESS", {"n": 2}))  # conflicting output
                else:
                    jobs.append((a, "ERROR", "conflicting error"))  # conflicting state
        rng.shuffle(jobs)
        chunks = [jobs[i::o.completion_procs] for i in range(o.completion_procs)]
        say(f"[{name}] {len(jobs)} completions of {len(actions)} actions from {o.completion_procs} processes "
            f"x 8 threads")
        connections.close_all()  # no database connection crosses the fork
        start_at = time.time() + 1.0
        ctx_mp = multiprocessing.get_context("fork")
        with ctx_mp.Pool(o.completion_procs) as pool:
            parts = pool.starmap(_complete_batch, [(procs.url, ctx.token, c, start_at, 8) for c in chunks])
        answers = [a for p in parts for a in p]
        stored = {a: (st, out) for a, st, out in ActionExecution.objects.filter(id__in=list(actions))
                  .values_list("id", "state", "output")}
        afters = Counter(TaskExecution.objects.filter(workflow_execution_id__in=ex_ids, name="after")
                         .values_list("workflow_execution_id", flat=True))
        codes = Counter(c for *_, c, _ in answers)
        wrong_ack = 0  # 200 for a result that is not the stored one: applied, then overwritten
        ok_by_action: dict[str, set] = {}
        for a, st, out, code, _ in answers:
            if code == 200:
                ok_by_action.setdefault(a, set()).add((st, json.dumps(out, sort_keys=True)))
                if stored[a][0] != st or stored[a][1] != {"result": out}:
                    wrong_ack += 1
        twice = sum(1 for v in ok_by_action.values() if len(v) > 1) + sum(1 for c in afters.values() if c > 1)
        never = sum(1 for a in actions if stored[a][0] not in TERMINAL)
        st_ex = states(ex_ids)
        stuck = sum(1 for i in ex_ids if st_ex.get(i) not in TERMINAL)
        return {
            "started": len(ex_ids), "finished": len(ex_ids) - stuck, "stuck": stuck,
            "lost": never, "duplicated": twice,
            "completions": len(answers), "answers": {str(k): v for k, v in sorted(codes.items())},
            "five_xx": sum(v for k, v in codes.items() if k >= 500),
            "refused": sum(v for k, v in codes.items() if 400 <= k < 500),
            "acknowledged_but_not_stored": wrong_ack,
            "next_task_rows": dict(Counter(afters.values())),
            "stored_states": dict(Counter(v[0] for v in stored.values())),
            "processes": o.completion_procs,
            "five_xx_sample": [a[4] for a in answers if a[3] >= 500 or a[3] == 0][:5],
        }
    finally:
        procs.stop_all(timeout=o.worker_stop_timeout + 10)


def scenario_fuzz_parser(ctx: Ctx) -> dict:
    """hypothesis: workflow-shaped documents (and broken YAML) into the
    parser, then every definition it accepts through the pure engine's start.
    The parser must answer valid or DefinitionError; anything else is a crash.
    Every tenth input also goes to POST /v2/workflows/validate on a real web
    process, where anything but a 200 with ``valid`` is a finding."""
    from bench import fuzz

    o, say, name = ctx.opts, ctx.say, "fuzz_parser"
    procs = ctx.procs(name)
    try:
        start_web(procs)
        say(f"[{name}] {o.parser_examples} generated definitions")
        out = fuzz.fuzz_parser(o.parser_examples, f"{procs.url}/v2/workflows/validate", ctx.headers(), say)
        out["over_http"] = fuzz.confirm_over_http(out, procs.url, ctx.headers(), say)
        out["five_xx"] += sum(1 for c in out["over_http"] if isinstance(c.get("status"), int) and c["status"] >= 500)
        return out
    finally:
        procs.stop_all(timeout=5)  # a request the fuzzer left hanging never ends on its own


def scenario_fuzz_api(ctx: Ctx) -> dict:
    """schemathesis against a real web process (no worker, so nothing a
    generated request starts can reach outside): /api/ from the schema the
    server serves at /api/schema, /v2 from bench/openapi_v2.yaml; positive and
    negative cases per operation, authenticated with the API token."""
    from bench import fuzz

    o, say, name = ctx.opts, ctx.say, "fuzz_api"
    procs = ctx.procs(name)
    try:
        start_web(procs)
        say(f"[{name}] {o.api_examples} cases per operation and mode")
        return fuzz.fuzz_api(procs.url, ctx.headers(), V2_SCHEMA, o.api_examples, say)
    finally:
        procs.stop_all(timeout=5)


RUNNERS = {
    "worker_kill9": scenario_worker_kill9,
    "web_kill9": scenario_web_kill9,
    "worker_sigterm": scenario_worker_sigterm,
    "stop_all": scenario_stop_all,
    "completions": scenario_completions,
    "fuzz_parser": scenario_fuzz_parser,
    "fuzz_api": scenario_fuzz_api,
}


# --- child ---------------------------------------------------------------------


def run_child(o: Options, result_path: Path, say: Callable[[str], None]) -> dict:
    """On the throwaway database: migrate, make the user and token, store the
    workflows, run the scenarios. Writes the JSON result to ``result_path``."""
    from django.contrib.auth import get_user_model
    from django.core.management import call_command
    from django.db import connection, connections
    from rest_framework.authtoken.models import Token

    from bench.driver import Outside
    from workflows import services

    db_name = isolation.check_connected(connection.settings_dict)
    scratch = result_path.parent
    result = {"ok": False, "database": {"vendor": connection.vendor, "name": db_name}, "broker": o.broker,
              "options": o.as_json(), "scenarios": {}, "failures": []}
    outside = None
    try:
        say(f"reliability: migrating {connection.vendor} database {db_name}")
        call_command("migrate", interactive=False, verbosity=0)
        user = get_user_model().objects.create_user(USER, password=os.urandom(12).hex())
        token = Token.objects.create(user=user).key
        outside = Outside(scratch, 0.1)
        services.save_workflows(workflow_yaml(outside.url), update=True)
        connections.close_all()
        env = dict(os.environ)
        ctx = Ctx(o, scratch, env, outside, token, say)
        for name in o.scenarios:
            t0 = time.monotonic()
            say(f"[{name}] {TITLES[name]}")
            try:
                out = RUNNERS[name](ctx)
            except Exception as exc:  # reported, and the other scenarios still run
                say(f"[{name}] FAILED to run: {type(exc).__name__}: {exc}")
                result["failures"].append(f"{name}: {type(exc).__name__}: {exc}")
                out = {"error": f"{type(exc).__name__}: {exc}", "traceback": traceback.format_exc()[-3000:]}
            out["seconds"] = round(time.monotonic() - t0, 1)
            result["scenarios"][name] = out
            say(f"[{name}] done in {out['seconds']} s: " + ", ".join(
                f"{k} {out[k]}" for k in ("started", "finished", "stuck", "lost", "duplicated", "inputs",
                                          "five_xx", "refused") if k in out))
            connections.close_all()
        result["ok"] = not result["failures"]
    finally:
        if outside is not None:
            outside.stop()
        result_path.write_text(json.dumps(result, indent=2, default=str) + "\n")
    return result


# --- parent ----------------------------------------------------------------------


def run_parent(o: Options, database: str, pg_url: str | None, keep: bool,
               say: Callable[[str], None]) -> tuple[dict | None, int | None, str]:
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
    argv = [sys.executable, str(ROOT / "manage.py"), "reliability", "--child", str(result_path),
            "--options-json", json.dumps(o.as_json())]
    cenv = dict(db.env, DJANGO_SETTINGS_MODULE="config.settings", PYTHONUNBUFFERED="1")
    cenv.pop("GUST_SYNC_WORKER", None)
    rc = None
    try:
        with open(child_log, "w") as log:
            proc = subprocess.Popen(argv, env=cenv, cwd=ROOT, stdout=subprocess.PIPE, stderr=log, text=True)
            for line in proc.stdout:
                say(line.rstrip("\n"))
            rc = proc.wait()
        result = json.loads(result_path.read_text()) if result_path.exists() else None
        tail = "".join(child_log.read_text(errors="replace").splitlines(True)[-40:])
    finally:
        db.drop(keep=keep)
    say(f"reliability: kept {db.tmpdir}" if keep else "reliability: dropped the throwaway database")
    return result, rc, tail


# --- the report ------------------------------------------------------------------

COLUMNS = [("started", "executions started"), ("finished", "finished"), ("stuck", "stuck"), ("lost", "lost"),
           ("duplicated", "duplicated"), ("inputs", "inputs fuzzed"), ("crashes", "crashes / hangs"),
           ("five_xx", "5xx seen"), ("refused", "requests refused")]


def table(out: dict) -> str:
    head = "| " + " | ".join(t for _, t in COLUMNS) + " |\n| " + " | ".join("---" for _ in COLUMNS) + " |\n"
    cells = [str(out[k]) if k in out else "—" for k, _ in COLUMNS]
    return head + "| " + " | ".join(cells) + " |\n"


DEFINITIONS = """\
- **executions started**: executions that exist at the end (POST answered 201, or created without an answer).
- **finished**: of those, terminal (SUCCESS, ERROR, CANCELLED) when the scenario's bound ended.
- **stuck**: not terminal at the bound (nothing legitimately waits in these workflows; PAUSED counts).
- **lost**: the action never reached the outside service, or its result never came back (the action ended
  in ERROR without the service's answer, e.g. failed by the overdue sweep); for completions: an action no
  completion was applied to.
- **duplicated**: the outside service was called more than once for one action execution (each execution has
  one task with one action, and the call's URL carries the execution id), a POST that made two executions, or a
  completion applied twice (two different results acknowledged with 200, or the next task created twice).
- **inputs fuzzed**: generated definitions (parser) or requests (API).
- **crashes / hangs**: parser or engine raised something other than its own errors, or took over 3 s on
  one input.
- **5xx seen**: answers >= 500.
- **requests refused**: 4xx answers, plus connections refused while the web process was down.
"""


def _details(name: str, out: dict) -> list[str]:
    lines = []
    if "error" in out:
        return [f"The scenario could not run: `{out['error']}`."]
    if name in ("worker_kill9", "worker_sigterm", "stop_all", "web_kill9"):
        lines.append(f"States at the bound: {out.get('by_state')}; outside calls {out.get('calls_total')}; "
                     f"never ran {out.get('never_ran')}, result lost {out.get('result_lost')}.")
        if out.get("error_reasons"):
            lines.append("Why actions failed: " + "; ".join(f"{v} x `{k}`" for k, v in out["error_reasons"].items()))
        if out.get("duplicate_calls"):
            lines.append("Calls per duplicated execution (sample): " + ", ".join(
                f"`{k}`: {v}" for k, v in out["duplicate_calls"].items()))
        if out.get("stuck_sample"):
            lines.append(f"Stuck (sample): {out['stuck_sample']}")
    if name == "worker_kill9":
        lines.append(f"{out.get('calls_when_killed')} calls had been made when the worker tree "
                     f"({out.get('killed_processes')} processes) was killed; waited {out.get('waited_s')} s after "
                     f"the kill (bound {out.get('bound_s')} s).")
    if name == "web_kill9":
        lines.append(f"{out.get('posts')} POSTs: answers {out.get('answers')}, {out.get('no_answer')} cut off "
                     f"without an answer ({out.get('no_answer_but_created')} of those created an execution), "
                     f"{out.get('posts_refused_at_connect')} POSTs refused at connect while the web process was down "
                     f"({out.get('connections_refused')} attempts, tried again every 0.1 s until it was back).")
    if name == "worker_sigterm":
        lines.append(f"The SIGTERMed worker exited with {out.get('sigterm_exit_code')} after "
                     f"{out.get('sigterm_stop_s')} s.")
    if name == "stop_all":
        lines.append(f"Exit codes on SIGTERM: {out.get('exit_codes')}; {out.get('paused_by_shutdown')} executions "
                     f"paused by shutdown; states right after the stop: {out.get('states_after_stop')}.")
    if name == "completions":
        lines.append(f"{out.get('completions')} PUT /v2/action_executions/<id> from {out.get('processes')} processes: "
                     f"answers {out.get('answers')}; stored {out.get('stored_states')}; "
                     f"{out.get('acknowledged_but_not_stored')} answered 200 for a result that is not the stored one; "
                     f"rows of the next task per execution {out.get('next_task_rows')}.")
        if out.get("five_xx_sample"):
            lines.append(f"5xx / no answer (sample): {out['five_xx_sample']}")
    if name == "fuzz_parser":
        lines.append(f"{out.get('valid')} valid, {out.get('invalid')} refused with DefinitionError, "
                     f"{out.get('engine_started')} started by the pure engine, {out.get('crashes')} crashes; "
                     f"slowest parse {out.get('slowest_parse_s')} s. Every tenth input through "
                     f"POST /v2/workflows/validate: {out.get('http_validate')}.")
        for k, v in (out.get("crash_kinds") or {}).items():
            lines.append(f"- crash **{k}** x{v['count']}: `{_short(v['message'], 200)}`; input: "
                         f"`{_short(v['input'], 200)!r}`")
        for c in out.get("over_http") or []:
            lines.append(f"- the same input over HTTP: `{c['request']}` -> {c['status']}: `{_short(c.get('answer'), 160)}`")
        for f in out.get("http_findings") or []:
            lines.append(f"- validate answered {f['status']}: `{_short(f['answer'], 200)}` for `{_short(f['input'], 150)!r}`")
    if name == "fuzz_api":
        lines.append(f"{len(out.get('operations') or {})} operations; "
                     f"{out.get('findings_total')} findings; 5xx by operation {out.get('five_xx_by_operation')}.")
        if out.get("answered_without_login"):
            lines.append("Answered 2xx without a token (not public by design): "
                         + ", ".join(f"`{x}`" for x in out["answered_without_login"]))
        seen = set()
        for f in out.get("findings") or []:
            key = (f["operation"], f.get("status"), _short(f.get("answer") or f.get("error"), 80))
            if key in seen:
                continue
            seen.add(key)
            req = f.get("request") or {}
            lines.append(f"- {f['operation']} ({f['mode']}) -> {f.get('status')}: `{req.get('method')} "
                         f"{_short(req.get('url'), 200)}` body `{_short(req.get('body'), 200)}` answered "
                         f"`{_short(f.get('answer') or f.get('error'), 200)}`")
        if out.get("schema_problems"):
            lines.append("Operations schemathesis could not generate for: " + "; ".join(
                f"`{_short(p, 150)}`" for p in out["schema_problems"][:8]))
    lines.append(f"Took {out.get('seconds')} s.")
    return lines


def render_markdown(result: dict, command: str) -> str:
    o = result.get("options", {})
    db = result.get("database", {})
    parts = [
        "# Reliability report\n",
        f"Written by `{command}` on {result.get('timestamp')} (commit {result.get('commit')}), "
        f"{db.get('vendor')} throwaway database `{Path(str(db.get('name'))).name}`, django-q2 "
        f"{result.get('broker')} broker. Real processes: gunicorn web (2 workers x 4 threads), `manage.py worker`, "
        "`manage.py run_tracker`, and the simulated outside service `bench/outside.py` whose `/record/<key>` counts "
        "every call. The API ran with its login (`GUST_API_AUTH=1`, an API token in `X-Auth-Token`).\n",
        f"Short settings, in production's ratios (Q timeout 300 < retry 360 < WORKER_ACTION_TIMEOUT 600): "
        f"django-q2 timeout {o.get('q_timeout')} s, retry {o.get('q_retry')} s "
        f"(`GUST_Q_TIMEOUT`, `GUST_Q_RETRY`), `GUST_WORKER_ACTION_TIMEOUT` {o.get('worker_action_timeout')} s, "
        f"`GUST_WORKER_STOP_TIMEOUT` {o.get('worker_stop_timeout')} s, tracker cycle (overdue sweep) "
        f"{o.get('query_interval')} s; each std.http call held {o.get('action_s')} s by the outside service.\n",
        "## What the columns mean\n", DEFINITIONS,
    ]
    for name, out in result.get("scenarios", {}).items():
        parts.append(f"## {TITLES.get(name, name)} (`{name}`)\n")
        doc = (RUNNERS[name].__doc__ or "").strip() if name in RUNNERS else ""
        if doc:
            parts.append(" ".join(doc.split()).replace("``", "`") + "\n")
        if "error" not in out:
            parts.append(table(out))
        parts.append("\n".join(_details(name, out)) + "\n")
    if result.get("failures"):
        parts.append("## Scenarios that could not run\n\n" + "\n".join(f"- {f}" for f in result["failures"]) + "\n")
    return "\n".join(parts)
