"""Cron triggers fired by several timer processes, for ``manage.py
cron_bench`` (bench/README.md, "Cron triggers").

A throwaway database gets ``triggers`` cron triggers of a one-task
workflow (``* * * * *``, ``remaining_executions = minutes``); ``processes``
``manage.py run_tracker`` processes (each runs the timer loop that fires
triggers) start on it, and the run lasts until every trigger used up its
count and was deleted (or ``minutes + 2`` minutes passed). Then the
executions are counted: per trigger (expected ``minutes`` each, so
``triggers * minutes`` in all) and per trigger and minute (more than one is
a duplicate fire).
"""

from __future__ import annotations

import json
import time
from collections import Counter

WORKFLOW = "bench_cron_noop"


# --- in the child (Django set up, on the throwaway database) ------------------


def seed(triggers: int, minutes: int) -> dict:
    from workflows import services
    from workflows import triggers as trigger_services

    services.save_workflows(f"version: '2.0'\n{WORKFLOW}:\n  tasks:\n    t1: {{action: std.noop}}\n")
    for i in range(triggers):
        trigger_services.create(
            {
                "name": f"every-minute-{i}",
                "workflow_name": WORKFLOW,
                "pattern": "* * * * *",
                "remaining_executions": minutes,
                # Mistral refuses two triggers alike in all but name
                "workflow_params": {"env": {"trigger": i}},
            }
        )
    return {"triggers": triggers}


def verify() -> dict:
    from workflows.models import CronTrigger, WorkflowExecution

    per_trigger: Counter = Counter()
    per_minute: Counter = Counter()
    states: Counter = Counter()
    for description, created_at, state in WorkflowExecution.objects.values_list("description", "created_at", "state"):
        trigger_id = json.loads(description)["triggered_by"]["id"]
        per_trigger[trigger_id] += 1
        per_minute[(trigger_id, created_at.strftime("%Y-%m-%d %H:%M"))] += 1
        states[state] += 1
    return {
        "executions": sum(per_trigger.values()),
        "per_trigger": sorted(per_trigger.values()),
        "duplicates": sum(n - 1 for n in per_minute.values() if n > 1),
        "states": dict(states),
        "triggers_left": CronTrigger.objects.count(),
    }


# --- in the parent ---------------------------------------------------------------


def run(triggers: int, minutes: int, processes: int, say) -> dict:
    from bench import children, isolation
    from bench.procs import GustProcesses

    db = isolation.create()
    procs = GustProcesses(db.tmpdir, {**db.env, "DJANGO_SETTINGS_MODULE": "config.settings"})
    procs.env = {k: v for k, v in procs.env.items() if k != "GUST_COUNT_QUERIES_DIR"}
    try:
        children.migrate(procs.env)
        children.run_child("cron_bench", procs.env, "seed", "--triggers", str(triggers), "--minutes", str(minutes))
        say(f"  {db.describe()}: {triggers} triggers '* * * * *' x {minutes}; {processes} timer processes")
        t0 = time.monotonic()
        procs.start_tracker(query_interval=5.0, pool_size=2, batch_queries=False, count=processes)
        deadline = t0 + (minutes + 2) * 60
        while True:
            time.sleep(15)
            procs.check_alive()
            seen = children.run_child("cron_bench", procs.env, "verify")
            say(
                f"  {time.monotonic() - t0:5.0f} s: {seen['executions']} executions, "
                f"{seen['triggers_left']} triggers left"
            )
            if seen["triggers_left"] == 0 or time.monotonic() > deadline:
                break
        time.sleep(2)  # an execution that started in the last instant is counted
        seen = children.run_child("cron_bench", procs.env, "verify")
        elapsed = time.monotonic() - t0
    finally:
        procs.stop_tracker()
        procs.stop_all(timeout=10.0)
        db.drop()
    expected = triggers * minutes
    ok = (
        seen["executions"] == expected
        and seen["duplicates"] == 0
        and seen["triggers_left"] == 0
        and seen["per_trigger"] == [minutes] * triggers
        and seen["states"] == {"SUCCESS": expected}
    )
    return {
        "database": db.describe(),
        "triggers": triggers,
        "minutes": minutes,
        "processes": processes,
        "expected": expected,
        **seen,
        "elapsed_s": round(elapsed, 1),
        "ok": ok,
    }
