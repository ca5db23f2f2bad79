"""Engine v2's benchmark: the time per event stays flat as an execution grows.

Two executions, driven in-process through ``workflows.services`` (the real
row store, locks and writes) on a throwaway database:

- ``loop``: one ``std.async_noop`` task that runs again after each
  completion, ``LOOP`` times; each completion is one event.
- ``fan``: ``FAN`` parallel ``std.async_noop`` tasks joined by one
  ``join: all`` task; each completion is one event.

For each, the per-event times of a window of events near the start (when
the execution holds ~100 task executions) and near the end (thousands) are
reported as median and p95; the target is end ≤ 2 × start.
"""

from __future__ import annotations

import statistics
import time

LOOP = 10_000
FAN = 5_000
ITEMS = 10_000
WINDOW = 100

ITEMS_WF = """
version: '2.0'
bench_items:
  input: [n]
  tasks:
    each:
      with-items: i in <% range(0, $.n) %>
      action: std.async_noop
"""

LOOP_WF = """
version: '2.0'
bench_loop:
  input: [n]
  vars: {i: 0}
  tasks:
    init:
      on-success: [step]
    step:
      action: std.async_noop
      publish: {i: <% $.i + 1 %>}
      on-success:
        - step: <% $.i < $.n %>
"""


def fan_wf(n: int) -> str:
    lines = ["version: '2.0'", "bench_fan:", "  tasks:"]
    for i in range(n):
        lines += [f"    b{i}:", "      action: std.async_noop", "      on-success: [j]"]
    lines += ["    j:", "      join: all", "      action: std.noop"]
    return "\n".join(lines) + "\n"


def _summary(times: list[float], queries: list[int]) -> dict:
    ordered = sorted(times)
    return {
        "events": len(times),
        "median_ms": round(statistics.median(ordered) * 1000, 3),
        "p95_ms": round(ordered[int(0.95 * (len(ordered) - 1))] * 1000, 3),
        # Deterministic, unlike the times on a shared machine: SQL statements per event.
        "queries_per_event": round(statistics.mean(queries), 2),
    }


class _Counter:
    """Counts the SQL statements the event runs (a connection execute wrapper)."""

    def __init__(self):
        self.n = 0

    def __call__(self, execute, sql, params, many, context):
        self.n += 1
        return execute(sql, params, many, context)


def _timed(fn, times: list[float], queries: list[int]) -> None:
    from django.db import connection

    counter = _Counter()
    with connection.execute_wrapper(counter):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    queries.append(counter.n)


def _running_action(execution_id: str) -> str:
    from workflows.models import ActionExecution

    return (
        ActionExecution.objects.filter(workflow_execution_id=execution_id, state="RUNNING")
        .values_list("id", flat=True)
        .first()
    )


def _complete_running(ex, n: int, label: str, say, result) -> tuple[list[float], list[int]]:
    """Complete the execution's n RUNNING actions one by one, timing each."""
    from workflows import services
    from workflows.models import ActionExecution

    ids = list(
        ActionExecution.objects.filter(workflow_execution_id=ex.id, state="RUNNING")
        .order_by("created_at", "id")
        .values_list("id", flat=True)
    )
    assert len(ids) == n, len(ids)
    say(f"  {label}: {n} started")
    times: list[float] = []
    queries: list[int] = []
    for i, action_id in enumerate(ids):
        _timed(lambda a=action_id, i=i: services.complete_action(a, "SUCCESS", result(i)), times, queries)
        if (i + 1) % 1000 == 0:
            say(f"  {label}: {i + 1}/{n} completions, last {times[-1] * 1000:.2f} ms, {queries[-1]} queries")
    ex.refresh_from_db()
    return times, queries


def run_loop(n: int = LOOP, window: int = WINDOW, say=print) -> dict:
    from workflows import services

    services.save_workflows(LOOP_WF, update=True)
    ex = services.start_execution("bench_loop", {"n": n})
    times, queries = [], []
    for i in range(n):
        action_id = _running_action(ex.id)
        _timed(lambda a=action_id, i=i: services.complete_action(a, "SUCCESS", {"i": i}), times, queries)
        if (i + 1) % 1000 == 0:
            say(f"  loop: {i + 1}/{n} events, last {times[-1] * 1000:.2f} ms, {queries[-1]} queries")
    ex.refresh_from_db()
    assert ex.state == "SUCCESS", ex.state_info
    start, end = slice(window, 2 * window), slice(-window, None)
    return {"tasks": n, "start": _summary(times[start], queries[start]), "end": _summary(times[end], queries[end])}


def run_fan(n: int = FAN, window: int = WINDOW, say=print) -> dict:
    from workflows import services
    from workflows.models import TaskExecution

    services.save_workflows(fan_wf(n), update=True)
    ex = services.start_execution("bench_fan")
    while TaskExecution.objects.filter(workflow_execution_id=ex.id, state="IDLE").exists():
        services.continue_execution(ex.id)  # what the worker's Continue jobs do
    times, queries = _complete_running(ex, n, "fan", say, lambda i: {"i": i})
    assert ex.state == "SUCCESS", ex.state_info
    # The last completion also runs the join and ends the workflow: left out.
    start, end = slice(0, window), slice(-window - 1, -1)
    return {"tasks": n + 1, "start": _summary(times[start], queries[start]), "end": _summary(times[end], queries[end])}


def run_items(n: int = ITEMS, window: int = WINDOW, say=print) -> dict:
    """One with-items task over ``n`` std.async_noop items, all started at
    once (no concurrency); each completion is one event."""
    from workflows import services

    services.save_workflows(ITEMS_WF, update=True)
    ex = services.start_execution("bench_items", {"n": n})
    times, queries = _complete_running(ex, n, "items", say, lambda i: i)
    assert ex.state == "SUCCESS", ex.state_info
    # The last completion also gathers the n results and ends the workflow: left out.
    start, end = slice(0, window), slice(-window - 1, -1)
    return {
        "tasks": 1,
        "items": n,
        "start": _summary(times[start], queries[start]),
        "end": _summary(times[end], queries[end]),
        "last_ms": round(times[-1] * 1000, 2),
    }


def verdict(result: dict) -> dict:
    ratio = result["end"]["median_ms"] / result["start"]["median_ms"]
    return {**result, "end_over_start": round(ratio, 2), "flat": ratio <= 2.0}
