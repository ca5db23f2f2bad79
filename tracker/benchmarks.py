"""The comparison page's button: ``manage.py compare_completion`` at a quick
size, as a background worker job, one at a time, with its progress in a
``BenchmarkRun`` row (so the page shows it across reloads and live).

- ``request(user, results_dir)`` checks the permission
  ``tracker.run_benchmark`` (Forbidden), makes the QUEUED row (a partial
  unique index allows one QUEUED or RUNNING run: a second click is a
  Conflict naming the running one) and enqueues ``run`` after commit. A run
  whose heartbeat is older than ``COMPLETIONS["BENCHMARK_STALE"]`` seconds
  lost its worker: it is marked ERROR and a new one may start.
- ``run(run_id)`` (the worker job) claims the row QUEUED → RUNNING with a
  compare-and-set, so a job delivered twice runs once; starts the command as
  a child process in its own session; turns each line it prints into
  ``progress`` and ``step`` (``progress_of``); and ends the row SUCCESS, with
  the result copied to ``compare-latest.json`` for the page, or ERROR with
  the output's tail. Past ``COMPLETIONS["BENCHMARK_TIMEOUT"]`` seconds the
  child's process group is killed.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections import deque
from pathlib import Path

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from tracker import conf as tracker_conf
from tracker.models import BenchmarkRun
from workflows.conf import section
from workflows.errors import Conflict, GustError, NotFound

logger = logging.getLogger("gust.tracker.benchmarks")

PERMISSION = "tracker.run_benchmark"
LATEST = "compare-latest.json"
# Three modes, five executions each, no idle/outstanding extras: about 30 s on this machine.
QUICK_ARGS = [
    "--n",
    "5",
    "--delay",
    "0.1",
    "--rate",
    "20",
    "--modes",
    "callback",
    "poll-0.5-x4",
    "hybrid-0.5-x4",
    "--no-extras",
]
DEFAULTS = {"BENCHMARK_ARGS": QUICK_ARGS, "BENCHMARK_TIMEOUT": 900.0, "BENCHMARK_STALE": 180.0}
HEARTBEAT = 1.0  # seconds between two writes of the row when only the log moved


class Forbidden(GustError):
    """The user may not run the benchmark: 403, nothing changes."""

    status = 403


conf = section(tracker_conf.get, "COMPLETIONS", DEFAULTS)


def allowed(user) -> bool:
    return bool(user and user.is_authenticated and user.has_perm(PERMISSION))


def active() -> BenchmarkRun | None:
    return BenchmarkRun.objects.filter(state__in=BenchmarkRun.ACTIVE).first()


def latest() -> BenchmarkRun | None:
    return BenchmarkRun.objects.first()


def request(user, results_dir: Path) -> BenchmarkRun:
    """Queue one run for ``user``; raises Forbidden or Conflict (one is already queued or running)."""
    if not allowed(user):
        raise Forbidden(
            f"{user.get_username() or 'Anonymous'} may not run the benchmark: the permission {PERMISSION} is needed"
        )
    stale = timezone.now() - dt.timedelta(seconds=float(conf("BENCHMARK_STALE")))
    BenchmarkRun.objects.filter(state__in=BenchmarkRun.ACTIVE, updated_at__lt=stale).update(
        state=BenchmarkRun.State.ERROR,
        finished_at=timezone.now(),
        error="Its worker stopped answering (no progress for a while); marked failed.",
    )
    stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
    try:
        with transaction.atomic():
            run = BenchmarkRun.objects.create(
                requested_by=user.get_username(),
                args=list(conf("BENCHMARK_ARGS")),
                output=str(Path(results_dir) / f"compare-{stamp}.json"),
                step="waiting for a worker",
            )
    except IntegrityError:
        running = active()
        detail = (
            f" (run {running.id}, started by {running.requested_by}, {round(running.progress * 100)}%)"
            if running
            else ""
        )
        raise Conflict(
            f"A benchmark is already running{detail}; wait for it to end",
            running.state if running else BenchmarkRun.State.RUNNING,
        ) from None
    transaction.on_commit(lambda: enqueue(run.id))
    return run


def enqueue(run_id: int) -> None:
    """A worker job through the project's queue, with a timeout longer than the run's own."""
    from django_q.tasks import async_task

    from workflows import queue

    async_task(
        "tracker.benchmarks.run",
        run_id,
        broker=queue.broker(),
        task_name=f"benchmark {run_id}",
        timeout=int(float(conf("BENCHMARK_TIMEOUT")) + 60),
    )


# --- the job ---------------------------------------------------------------------

_MODE = re.compile(r"^compare: mode (\d+)/(\d+) (\S+)( \(| done)")
_STEPS = (
    ("compare: migrating", 0.05, "migrating a throwaway database"),
    ("compare: migrated", 0.12, "starting web, worker and the outside service"),
    ("compare: web ", 0.18, "warming up"),
    ("compare: warm-up", 0.25, "warm-up done"),
    ("compare: extras", 0.9, "extras: idle tracker, many outstanding"),
    ("compare: dropped", 0.97, "dropping the throwaway database"),
    ("compare: wrote", 0.99, "writing the result"),
)
MODES_START, MODES_END = 0.25, 0.9


def progress_of(line: str) -> tuple[float, str] | None:
    """(fraction done, step) that a line of ``compare_completion``'s output
    says, or None for a line that moves nothing."""
    m = _MODE.match(line)
    if m:
        i, n, name, done = int(m[1]), max(int(m[2]), 1), m[3], m[4] == " done"
        share = (i if done else i - 1) / n
        return round(MODES_START + (MODES_END - MODES_START) * share, 3), f"mode {i}/{n} {name}" + (
            " done" if done else ""
        )
    for prefix, fraction, step in _STEPS:
        if line.startswith(prefix):
            return fraction, step
    return None


def argv(run: BenchmarkRun) -> list[str]:
    return [
        sys.executable,
        str(Path(settings.BASE_DIR) / "manage.py"),
        "compare_completion",
        *run.args,
        "--output",
        run.output,
    ]


def run(run_id: int) -> str:
    """The worker job: run the command, report its progress, store its end. Returns the final state."""
    claimed = BenchmarkRun.objects.filter(id=run_id, state=BenchmarkRun.State.QUEUED).update(
        state=BenchmarkRun.State.RUNNING, started_at=timezone.now(), step="starting", updated_at=timezone.now()
    )
    if not claimed:
        logger.info("benchmark run %s is not queued (delivered twice, or gone); not run again", run_id)
        return "skipped"
    row = BenchmarkRun.objects.get(id=run_id)
    tail: deque[str] = deque(maxlen=30)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    deadline = time.monotonic() + float(conf("BENCHMARK_TIMEOUT"))
    try:
        proc = subprocess.Popen(
            argv(row),
            cwd=settings.BASE_DIR,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
    except OSError as exc:
        return _end(row, BenchmarkRun.State.ERROR, f"could not start compare_completion: {exc}", tail)
    last_write = 0.0
    timed_out = False
    for line in proc.stdout:
        line = line.rstrip("\n")
        tail.append(line)
        moved = progress_of(line)
        if moved:
            row.progress, row.step = max(row.progress, moved[0]), moved[1]
        if moved or time.monotonic() - last_write >= HEARTBEAT:
            row.log_tail = "\n".join(tail)
            row.save(update_fields=["progress", "step", "log_tail", "updated_at"])
            last_write = time.monotonic()
        if time.monotonic() > deadline:
            timed_out = True
            os.killpg(proc.pid, signal.SIGTERM)
            break
    try:
        rc = proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        rc = proc.wait()
    if timed_out:
        return _end(row, BenchmarkRun.State.ERROR, f"stopped after {conf('BENCHMARK_TIMEOUT'):g} s", tail)
    output = Path(row.output)
    if rc != 0 or not output.exists():
        return _end(row, BenchmarkRun.State.ERROR, f"compare_completion exited with {rc}", tail)
    shutil.copyfile(output, output.with_name(LATEST))
    return _end(row, BenchmarkRun.State.SUCCESS, "", tail)


def _end(row: BenchmarkRun, state: str, error: str, tail) -> str:
    row.state, row.error, row.log_tail = state, error, "\n".join(tail)
    row.finished_at = timezone.now()
    if state == BenchmarkRun.State.SUCCESS:
        row.progress, row.step = 1.0, "done"
    row.save(update_fields=["state", "error", "log_tail", "finished_at", "progress", "step", "updated_at"])
    return state


def get(run_id: int) -> BenchmarkRun:
    run_ = BenchmarkRun.objects.filter(id=run_id).first()
    if run_ is None:
        raise NotFound("BenchmarkRun", str(run_id))
    return run_
