"""Worker throughput through the broker, for ``manage.py broker_bench``.

One run: a throwaway database (bench.isolation) is migrated, ``seed``
starts ``jobs`` executions of a one-task workflow whose action is
``std.sleep seconds=0`` (a worker action doing no I/O) while no worker runs,
so their jobs wait in the broker; then ``clusters`` ``manage.py worker``
processes with ``GUST_WORKERS=workers`` each drain it, and ``wait`` watches
the database until every action is SUCCESS. Jobs/s is ``jobs`` over the span
from the first claim (``worker_started_at``) to the last completion
(``updated_at``), so process start-up is not in it. Every run of the action
is written down by bench/runcount.py in the worker processes: a job run
twice would show.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

WORKFLOW = "version: '2.0'\n\nbench_io1:\n  tasks:\n    t1:\n      action: std.sleep seconds=0\n"
WAIT_S = 600  # the longest a run may take to drain


# --- in the child (Django set up, on the throwaway database) --------------------


def seed(jobs: int) -> dict:
    from workflows import queue, services

    services.save_workflows(WORKFLOW)
    broker = queue.broker()
    broker.purge_queue()
    start = time.monotonic()
    for _ in range(jobs):
        services.start_execution("bench_io1", {})
    return {"seeded": jobs, "seed_s": round(time.monotonic() - start, 2), "queue_size": broker.queue_size()}


def wait(jobs: int, timeout: float) -> dict:
    from django.db.models import Count, Max, Min

    from workflows.models import ActionExecution, WorkflowExecution

    end = time.monotonic() + timeout
    actions = ActionExecution.objects.filter(name="std.sleep")
    while time.monotonic() < end:
        done = actions.filter(state="SUCCESS").count()
        if done >= jobs:
            break
        time.sleep(0.1)
    span = actions.filter(state="SUCCESS").aggregate(first=Min("worker_started_at"), last=Max("updated_at"))
    states = dict(actions.order_by().values_list("state").annotate(n=Count("id")))
    executions = dict(WorkflowExecution.objects.order_by().values_list("state").annotate(n=Count("id")))
    seconds = (span["last"] - span["first"]).total_seconds() if span["first"] and span["last"] else None
    return {
        "action_states": states,
        "execution_states": executions,
        "span_s": seconds,
        "jobs_per_s": round(states.get("SUCCESS", 0) / seconds, 1) if seconds else None,
    }


# --- in the parent (no database) ----------------------------------------------------


def run_one(
    broker: str,
    clusters: int,
    workers: int,
    jobs: int,
    say,
    profile_dir: Path | None = None,
    redis_url: str | None = None,
) -> dict:
    from bench import children, isolation, runcount
    from bench.procs import GustProcesses, machine_busy_s, tree_cpu_s

    db = isolation.create()
    runs_dir = db.tmpdir / "runs"
    runs_dir.mkdir()
    procs = GustProcesses(
        db.tmpdir, {**db.env, "DJANGO_SETTINGS_MODULE": "config.settings"}, broker=broker, redis_url=redis_url
    )
    env = {**procs.env, "GUST_QUEUE": f"gust-broker-bench-{os.getpid()}", "GUST_LOG_LEVEL": "WARNING"}
    env.pop("GUST_COUNT_QUERIES_DIR", None)
    workers_env = {**env, "GUST_BENCH_RUNS_DIR": str(runs_dir), "GUST_WORKERS": str(workers)}
    started = []
    try:
        children.migrate(env)
        seeded = children.run_child("broker_bench", env, "seed", "--jobs", str(jobs))
        say(
            f"  {db.describe()}: {jobs} jobs queued in {seeded['seed_s']} s ({broker} broker, "
            f"{clusters} x {workers} workers)"
        )
        procs.env = workers_env
        servers0, busy0 = server_cpu_s(), machine_busy_s()
        t0 = time.time()
        for i in range(clusters):
            started.append(procs._spawn("worker", [sys.executable, "manage.py", "worker"], log_name=f"worker-{i}"))
        profiler = _profile(started[0].pid, runs_dir, profile_dir, broker) if profile_dir else None
        waited = children.run_child("broker_bench", env, "wait", "--jobs", str(jobs))
        wall = time.time() - t0
        cpu = sum(tree_cpu_s(p.pid) for p in started)
        servers = {k: round(v - servers0.get(k, 0.0), 2) for k, v in server_cpu_s().items()}
        busy = round(machine_busy_s() - busy0, 2)
        if profiler:
            profiler.join(120)
    finally:
        for p in started:
            p.stop(20)
        counted = runcount.read(runs_dir)
        db.drop()
    ok = (
        waited["action_states"].get("SUCCESS", 0) == jobs
        and counted["run_more_than_once"] == 0
        and counted["distinct"] == jobs
    )
    return {
        "broker": broker,
        "database": db.vendor,
        "clusters": clusters,
        "workers_per_cluster": workers,
        "jobs": jobs,
        "ok": ok,
        **waited,
        "wall_from_worker_start_s": round(wall, 2),
        "worker_cpu_s": round(cpu, 2),
        "worker_cpu_ms_per_job": round(1000 * cpu / jobs, 2),
        # The database and Redis servers are shared with whatever else runs on the
        # machine: their CPU over the run is an upper bound of what this run cost them.
        "server_cpu_s": servers,
        "machine_busy_cpu_s": busy,
        "machine_busy_ms_per_job": round(1000 * busy / jobs, 2),
        "runs": counted,
        "seed": seeded,
    }


def server_cpu_s() -> dict[str, float]:
    """CPU seconds so far of every PostgreSQL and Redis server process on the machine."""
    import psutil

    out = {"postgres": 0.0, "redis": 0.0}
    for p in psutil.process_iter(["name", "cpu_times"]):
        name, t = p.info["name"] or "", p.info["cpu_times"]
        key = "postgres" if name.startswith("postgres") else "redis" if name.startswith("redis-server") else None
        if key and t:
            out[key] += t.user + t.system
    return out


def _profile(pid: int, runs_dir: Path, directory: Path, broker: str) -> threading.Thread:
    """py-spy over one worker process tree for 8 s once its first job ran
    (so start-up is not in it): sampling, ``--nonblocking``, raw stacks."""
    directory.mkdir(parents=True, exist_ok=True)
    out = directory / f"broker-{broker}-{int(time.time())}.txt"
    argv = [
        str(Path(sys.executable).parent / "py-spy"),
        "record",
        "--pid",
        str(pid),
        "--subprocesses",
        "--nonblocking",
        "--duration",
        "8",
        "--rate",
        "200",
        "--format",
        "raw",
        "--output",
        str(out),
    ]

    def record():
        end = time.monotonic() + 120
        while not any(runs_dir.glob("runs-*.txt")) and time.monotonic() < end:
            time.sleep(0.05)
        subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)

    thread = threading.Thread(target=record, daemon=True)
    thread.start()
    return thread
