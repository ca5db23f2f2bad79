"""Deleting finished executions while clients run workflows, for
``manage.py retention_bench`` (bench/README.md, "Retention").

A throwaway database gets ``old`` finished executions (each with one task
and one action execution, updated two days ago) written directly with
``bulk_create``; gunicorn, ``manage.py worker`` and ``manage.py run_tracker``
start on it (bench.procs, as ``bin/run``), and ``clients`` threads run
``bench_seq10`` over HTTP back to back (POST, then GET every 5 ms until
SUCCESS, as bench/rest.py). Phases: ``before`` (clients only), ``during``
(``manage.py expire_executions --older-than 60`` runs as its own process,
batch by batch, until it is done) and ``after`` (clients only again). The
latencies of each phase are compared; then the database is checked: every
old execution gone with its rows, every client execution still there.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import uuid
from datetime import timedelta
from pathlib import Path

from bench import rest
from bench.workflows import seq_yaml

ROOT = Path(__file__).resolve().parent.parent
WORKFLOW = "bench_seq10"
SEED_CHUNK = 2000


# --- in the child (Django set up, on the throwaway database) ------------------


def seed(old: int) -> dict:
    """``old`` finished executions, copied from one real run of a one-task workflow."""
    from django.db import transaction
    from django.utils import timezone

    from workflows import services
    from workflows.models import ActionExecution, TaskExecution, WorkflowExecution

    services.save_workflows("version: '2.0'\nbench_old1:\n  tasks:\n    t1: {action: std.noop}\n")
    template = services.start_execution("bench_old1", {})
    task = TaskExecution.objects.get(workflow_execution=template)
    action = ActionExecution.objects.get(workflow_execution=template)
    WorkflowExecution.objects.filter(id=template.id).delete()
    when = timezone.now() - timedelta(days=2)
    start = time.monotonic()
    for first in range(0, old, SEED_CHUNK):
        n = min(SEED_CHUNK, old - first)
        execs, tasks, actions = [], [], []
        for _ in range(n):
            ex = _copy(template, id=str(uuid.uuid4()))
            t = _copy(task, id=str(uuid.uuid4()), workflow_execution_id=ex.id)
            a = _copy(action, id=str(uuid.uuid4()), workflow_execution_id=ex.id, task_execution_id=t.id)
            execs.append(ex), tasks.append(t), actions.append(a)
        with transaction.atomic():
            WorkflowExecution.objects.bulk_create(execs)
            TaskExecution.objects.bulk_create(tasks)
            ActionExecution.objects.bulk_create(actions)
    # auto_now set updated_at on insert: make them old in one statement.
    WorkflowExecution.objects.update(updated_at=when)
    return {"seeded": old, "seed_s": round(time.monotonic() - start, 1)}


def _copy(row, **changes):
    values = {f.attname: getattr(row, f.attname) for f in row._meta.concrete_fields}
    values.update(changes)
    return type(row)(**values)


def verify(old: int, client_ids: list[str]) -> dict:
    from django.db.models import Count

    from workflows.models import ActionExecution, TaskExecution, WorkflowExecution

    remaining_old = WorkflowExecution.objects.filter(workflow_name="bench_old1").count()
    clients = WorkflowExecution.objects.filter(id__in=client_ids)
    return {
        "old_remaining": remaining_old,
        "old_tasks_remaining": TaskExecution.objects.filter(workflow_execution__workflow_name="bench_old1").count(),
        "orphan_actions": ActionExecution.objects.filter(workflow_execution__isnull=True).count(),
        "client_executions_kept": clients.count(),
        "client_states": dict(clients.order_by().values_list("state").annotate(n=Count("id"))),
    }


# --- in the parent ----------------------------------------------------------------


class Clients:
    """``n`` threads running the workflow back to back; latencies per phase."""

    def __init__(self, url: str, n: int):
        self.client = rest.Client(f"{url}/v2")
        self.n = n
        self.phase = "before"
        self.latencies: dict[str, list[float]] = {"before": [], "during": [], "after": []}
        self.ids: list[str] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._loop, daemon=True) for _ in range(n)]

    def start(self):
        for t in self._threads:
            t.start()

    def _loop(self):
        while not self._stop.is_set():
            phase = self.phase
            try:
                ms, _, _, ex_id = rest.run_to_success(self.client, WORKFLOW)
            except Exception as exc:  # counted, reported; the run goes on
                self.errors.append(f"{type(exc).__name__}: {exc}"[:300])
                time.sleep(0.1)
                continue
            if phase == self.phase:  # a run that straddles two phases belongs to neither
                self.latencies[phase].append(ms)
            self.ids.append(ex_id)

    def stop(self):
        self._stop.set()
        for t in self._threads:
            t.join(150)


def run(old: int, clients: int, phase_s: float, batch_size: int, say, ids_file: Path | None = None) -> dict:
    from bench import children, isolation
    from bench.procs import GustProcesses

    db = isolation.create()
    procs = GustProcesses(db.tmpdir, {**db.env, "DJANGO_SETTINGS_MODULE": "config.settings"})
    env = {k: v for k, v in procs.env.items() if k != "GUST_COUNT_QUERIES_DIR"}
    procs.env = env
    crowd = None
    try:
        children.migrate(env)
        seeded = children.run_child("retention_bench", env, "seed", "--old", str(old))
        say(f"  {db.describe()}: {old} finished executions written in {seeded['seed_s']} s")
        procs.start_web_and_worker()
        procs.start_tracker(query_interval=5.0, pool_size=10, batch_queries=False)
        rest.Client(f"{procs.url}/v2").request("POST", "/workflows", seq_yaml(10), ctype="text/plain")
        crowd = Clients(procs.url, clients)
        crowd.start()
        time.sleep(phase_s)
        crowd.phase = "during"
        say(f"  {clients} clients running {WORKFLOW}; deleting")
        t0 = time.monotonic()
        deleter = subprocess.run(
            [sys.executable, "manage.py", "expire_executions", "--older-than", "60", "--batch-size", str(batch_size)],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=3600,
        )
        delete_s = time.monotonic() - t0
        if deleter.returncode:
            raise RuntimeError(f"expire_executions failed:\n{deleter.stderr[-3000:]}")
        crowd.phase = "after"
        time.sleep(phase_s)
        crowd.stop()
        checked = children.run_child(
            "retention_bench", env, "verify", "--old", str(old), "--ids-file", _write_ids(db.tmpdir, crowd.ids)
        )
    finally:
        if crowd is not None:
            crowd.stop()
        procs.stop_all(timeout=10.0)
        db.drop()
    phases = {
        p: ({"n": len(v), **rest.stats(v), "p99_ms": rest.r2(rest.pct(v, 99))} if v else {"n": 0})
        for p, v in crowd.latencies.items()
    }
    before, during = phases["before"].get("p95_ms"), phases["during"].get("p95_ms")
    ratio = round(during / before, 3) if before and during else None
    last_line = deleter.stdout.strip().splitlines()[-1]
    ok = (
        checked["old_remaining"] == 0
        and checked["old_tasks_remaining"] == 0
        and checked["orphan_actions"] == 0
        and checked["client_executions_kept"] == len(set(crowd.ids))
        and not crowd.errors
    )
    return {
        "database": db.vendor,
        "old": old,
        "clients": clients,
        "batch_size": batch_size,
        "phase_s": phase_s,
        "delete_s": round(delete_s, 1),
        "deleted_per_s": round(old / delete_s, 1),
        "deleter": last_line,
        "phases": phases,
        "p95_during_over_before": ratio,
        "target_ratio": 1.2,
        "met": ratio is not None and ratio <= 1.2,
        "ok": ok,
        "checked": checked,
        "client_errors": crowd.errors[:10],
        "seed": seeded,
    }


def _write_ids(directory: Path, ids: list[str]) -> str:
    path = directory / "client-ids.json"
    path.write_text(json.dumps(sorted(set(ids))))
    return str(path)
