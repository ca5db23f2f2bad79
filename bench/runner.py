"""Run the benchmark scenarios against whatever database Django is connected to.

``manage.py bench`` only calls these from a child process whose database is a
throwaway one (see ``bench.isolation``); the functions themselves do not care,
so a test may also call them against its own database.

Timing, per execution: from just before the call that creates the execution
(``services.start_execution``, or ``POST /v2/executions`` with ``http=True``)
until a read of the execution row (directly, or ``GET /v2/executions/<id>``)
shows SUCCESS. Checking the rows that every execution left behind happens
after the timed loop and is not part of any number.
"""

from __future__ import annotations

import json
import math
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from django.db import connection, connections
from django.db.models import Count, Q

from bench.workflows import CONC_THREADS, SHAPES, all_yaml
from core.states import TERMINAL, State
from workflows import services
from workflows.models import ActionExecution, TaskExecution, WorkflowExecution

SCENARIOS = ("noop1", "seq50", "fan100", "conc")
DEFAULT_REPEAT = {"noop1": 50, "seq50": 20, "fan100": 10, "conc": 1}
POLL_S = 0.005  # the Mistral reference numbers were taken polling every 5 ms
TIMEOUT_S = 120.0


class BenchFailure(Exception):
    """An execution did not end in SUCCESS, or left the wrong rows behind."""


# --- numbers -----------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    if not values:
        return math.nan
    s = sorted(values)
    pos = (len(s) - 1) * q / 100.0
    lo, hi = math.floor(pos), math.ceil(pos)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def summarize(latencies_ms: list[float], wall_s: float, tasks_per_execution: int) -> dict:
    n = len(latencies_ms)
    return {
        "n": n,
        "tasks_per_execution": tasks_per_execution,
        "p50_ms": round(percentile(latencies_ms, 50), 3),
        "p95_ms": round(percentile(latencies_ms, 95), 3),
        "mean_ms": round(statistics.fmean(latencies_ms), 3) if n else math.nan,
        "min_ms": round(min(latencies_ms), 3) if n else math.nan,
        "max_ms": round(max(latencies_ms), 3) if n else math.nan,
        "stdev_ms": round(statistics.stdev(latencies_ms), 3) if n > 1 else 0.0,
        "wall_s": round(wall_s, 4),
        "executions_per_s": round(n / wall_s, 2) if wall_s > 0 else None,
        "tasks_per_s": round(n * tasks_per_execution / wall_s, 1) if wall_s > 0 else None,
    }


# --- one execution -----------------------------------------------------------


def _fail_state(execution_id: str, state: str, info) -> BenchFailure:
    return BenchFailure(f"execution {execution_id} ended in {state}, not SUCCESS: {info}")


def run_direct(workflow: str) -> tuple[str, float]:
    """services.start_execution, then read the row until it is SUCCESS."""
    t0 = time.perf_counter()
    ex = services.start_execution(workflow, {})
    deadline = t0 + TIMEOUT_S
    while True:
        row = WorkflowExecution.objects.filter(id=ex.id).values_list("state", "state_info").first()
        if row is None:
            raise BenchFailure(f"execution {ex.id} has no row after start_execution returned")
        state, info = row
        if state == State.SUCCESS:
            return ex.id, (time.perf_counter() - t0) * 1000.0
        if state in TERMINAL:
            raise _fail_state(ex.id, state, info)
        if time.perf_counter() > deadline:
            raise BenchFailure(f"execution {ex.id} still {state} after {TIMEOUT_S:.0f} s")
        time.sleep(POLL_S)


def run_http(workflow: str, client) -> tuple[str, float]:
    """POST /v2/executions, then GET /v2/executions/<id> until SUCCESS."""
    body = json.dumps({"workflow_name": workflow, "input": {}})
    t0 = time.perf_counter()
    resp = client.post("/v2/executions", data=body, content_type="application/json")
    if resp.status_code != 201:
        raise BenchFailure(f"POST /v2/executions answered {resp.status_code}: {resp.content[:500]!r}")
    execution_id = resp.json()["id"]
    deadline = t0 + TIMEOUT_S
    while True:
        got = client.get(f"/v2/executions/{execution_id}")
        if got.status_code != 200:
            raise BenchFailure(f"GET /v2/executions/{execution_id} answered {got.status_code}")
        data = got.json()
        state = data["state"]
        if state == State.SUCCESS:
            return execution_id, (time.perf_counter() - t0) * 1000.0
        if state in TERMINAL:
            raise _fail_state(execution_id, state, data.get("state_info"))
        if time.perf_counter() > deadline:
            raise BenchFailure(f"execution {execution_id} still {state} after {TIMEOUT_S:.0f} s")
        time.sleep(POLL_S)


def make_runner(http: bool) -> Callable[[str], tuple[str, float]]:
    """One runner per thread: the HTTP one carries its own test Client."""
    if not http:
        return run_direct
    from django.test import Client

    client = Client()
    return lambda workflow: run_http(workflow, client)


# --- checking what the executions left behind ---------------------------------


def _chunks(items: list[str], size: int = 400):
    for i in range(0, len(items), size):
        yield items[i : i + size]


def verify(execution_ids: list[str], tasks_per_execution: int) -> dict:
    """Every execution SUCCESS, with exactly ``tasks_per_execution`` task rows
    and as many action rows, all SUCCESS. Raises BenchFailure otherwise."""
    states: dict[str, str] = {}
    tasks: dict[str, tuple[int, int]] = {}
    actions: dict[str, tuple[int, int]] = {}
    ok = Count("id", filter=Q(state=State.SUCCESS))
    for chunk in _chunks(execution_ids):
        states.update(WorkflowExecution.objects.filter(id__in=chunk).values_list("id", "state"))
        for model, into in ((TaskExecution, tasks), (ActionExecution, actions)):
            rows = (
                model.objects.filter(workflow_execution_id__in=chunk)
                .values("workflow_execution_id")
                .annotate(n=Count("id"), ok=ok)
                .values_list("workflow_execution_id", "n", "ok")
            )
            into.update({ex_id: (n, k) for ex_id, n, k in rows})
    problems = []
    for ex_id in execution_ids:
        state = states.get(ex_id)
        n_tasks, ok_tasks = tasks.get(ex_id, (0, 0))
        n_actions, ok_actions = actions.get(ex_id, (0, 0))
        if state != State.SUCCESS:
            problems.append(f"{ex_id}: state {state}")
        if n_tasks != tasks_per_execution or ok_tasks != n_tasks:
            problems.append(f"{ex_id}: {n_tasks} task executions ({ok_tasks} SUCCESS), expected {tasks_per_execution}")
        if n_actions != tasks_per_execution or ok_actions != n_actions:
            problems.append(
                f"{ex_id}: {n_actions} action executions ({ok_actions} SUCCESS), expected {tasks_per_execution}"
            )
    if len(set(execution_ids)) != len(execution_ids):
        problems.append("the same execution id was reported twice")
    if problems:
        shown = "\n  ".join(problems[:10])
        more = f"\n  ... and {len(problems) - 10} more" if len(problems) > 10 else ""
        raise BenchFailure(f"{len(problems)} problem(s) in {len(execution_ids)} executions:\n  {shown}{more}")
    total = len(execution_ids) * tasks_per_execution
    return {
        "executions": len(execution_ids),
        "success": len(execution_ids),
        "task_executions": total,
        "action_executions": total,
        "task_executions_per_execution": tasks_per_execution,
    }


# --- scenarios ---------------------------------------------------------------


@dataclass
class Options:
    repeat: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_REPEAT))
    warmup: int = 1
    http: bool = False
    threads: int = CONC_THREADS
    progress: Callable[[str], None] = print


def load_workflows() -> list[str]:
    """Store the benchmark workflows (replacing same-named ones)."""
    names = []
    for text in all_yaml():
        names += [wf.name for wf in services.save_workflows(text, update=True)]
    return names


def _report_every(n: int) -> int:
    return max(1, math.ceil(n / 5))


def run_sequential(name: str, opts: Options) -> dict:
    shape = SHAPES[name]
    n = opts.repeat[name]
    run = make_runner(opts.http)
    say = opts.progress
    warm_ids = [run(shape.workflow)[0] for _ in range(opts.warmup)]
    say(
        f"[{name}] {n} executions of {shape.workflow} ({shape.tasks} task(s) each), "
        f"{opts.warmup} warm-up, {'HTTP' if opts.http else 'direct'}"
    )
    ids, lat = [], []
    every = _report_every(n)
    t0 = time.perf_counter()
    for i in range(n):
        ex_id, ms = run(shape.workflow)
        ids.append(ex_id)
        lat.append(ms)
        if (i + 1) % every == 0 or i + 1 == n:
            say(f"[{name}]   {i + 1:>4}/{n}  last {ms:8.2f} ms  p50 so far {percentile(lat, 50):8.2f} ms")
    wall = time.perf_counter() - t0
    result = summarize(lat, wall, shape.tasks)
    result["warmup"] = opts.warmup
    result["workflow"] = shape.workflow
    result["verified"] = verify(warm_ids + ids, shape.tasks)
    return result


def run_conc(opts: Options) -> dict:
    """``threads`` seq50 executions started at the same moment from as many
    threads, ``repeat`` rounds. wall_s is the sum of the rounds' wall times."""
    name = "conc"
    shape = SHAPES[name]
    rounds, threads = opts.repeat[name], opts.threads
    say = opts.progress
    warm_ids = [make_runner(opts.http)(shape.workflow)[0] for _ in range(opts.warmup)]
    say(
        f"[{name}] {rounds} round(s) of {threads} concurrent {shape.workflow} executions "
        f"({threads * shape.tasks} tasks per round), {'HTTP' if opts.http else 'direct'}"
    )
    ids: list[str] = []
    lat: list[float] = []
    round_walls: list[float] = []
    for r in range(rounds):
        barrier = threading.Barrier(threads + 1, timeout=60)
        results: list[tuple[str, float] | None] = [None] * threads
        errors: list[str] = []

        # Bound per round: each round joins its threads before the next one makes new lists.
        def worker(i: int, barrier=barrier, results=results, errors=errors) -> None:
            try:
                run = make_runner(opts.http)
                if not opts.http:
                    connection.ensure_connection()  # a server thread has its connection already
                barrier.wait()
                results[i] = run(shape.workflow)
            except threading.BrokenBarrierError:
                errors.append(f"thread {i}: barrier broken")
            except BaseException as exc:  # noqa: BLE001 - reported below, loudly
                errors.append(f"thread {i}: {type(exc).__name__}: {exc}")
                barrier.abort()
            finally:
                connection.close()  # this thread's own connection

        pool = [threading.Thread(target=worker, args=(i,), name=f"bench-conc-{i}") for i in range(threads)]
        for t in pool:
            t.start()
        try:
            barrier.wait()
        except threading.BrokenBarrierError:
            pass
        t0 = time.perf_counter()
        for t in pool:
            t.join()
        wall = time.perf_counter() - t0
        if errors:
            raise BenchFailure(f"conc round {r + 1}: " + "; ".join(sorted(errors)[:5]))
        round_walls.append(wall)
        for ex_id, ms in results:  # type: ignore[misc]
            ids.append(ex_id)
            lat.append(ms)
        say(
            f"[{name}]   round {r + 1}/{rounds}: {threads} executions in {wall:.3f} s "
            f"({threads * shape.tasks / wall:.0f} tasks/s), slowest {max(ms for _, ms in results):.1f} ms"
        )  # type: ignore[misc]
    result = summarize(lat, sum(round_walls), shape.tasks)
    result.update(
        warmup=opts.warmup,
        workflow=shape.workflow,
        threads=threads,
        rounds=rounds,
        round_wall_s=[round(w, 4) for w in round_walls],
        verified=verify(warm_ids + ids, shape.tasks),
    )
    return result


def run_scenario(name: str, opts: Options) -> dict:
    if name == "conc":
        result = run_conc(opts)
    else:
        result = run_sequential(name, opts)
    opts.progress(
        f"[{name}] n={result['n']}  p50 {result['p50_ms']:.2f} ms  p95 {result['p95_ms']:.2f} ms  "
        f"mean {result['mean_ms']:.2f} ms  min {result['min_ms']:.2f}  max {result['max_ms']:.2f}  "
        f"wall {result['wall_s']:.3f} s  {result['tasks_per_s']:.0f} tasks/s  "
        f"verified: {result['verified']['executions']} SUCCESS, "
        f"{result['verified']['task_executions']} task executions"
    )
    return result


def close_connections() -> None:
    connections.close_all()
