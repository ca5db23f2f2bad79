"""A real ``manage.py worker`` process (django-q2 cluster) runs an I/O action.

On SQLite it uses the ORM broker; when the suite runs on PostgreSQL it uses
the Redis broker at REDIS_URL (default 127.0.0.1:6379), so the scale-out
configuration is exercised for real, not mocked.
"""

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil
import pytest
from django.db import connection
from django_q.conf import Conf

from workflows import lifecycle, queue, services
from workflows.models import ActionExecution, EngineProcess, WorkflowExecution

ROOT = Path(__file__).resolve().parent.parent
REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
STOP_TIMEOUT = 5  # seconds a stopping worker gives its jobs in flight


def database_url() -> str:
    s = connection.settings_dict
    if connection.vendor == "sqlite":
        return f"sqlite:///{s['NAME']}"
    return f"postgres://{s['USER'] or 'postgres'}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"


def start_worker(env):
    # Its own session, so a test can signal the worker's whole process group.
    return subprocess.Popen(
        [sys.executable, "manage.py", "worker"],
        cwd=ROOT,
        env=env,
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


@pytest.fixture
def worker_process(monkeypatch):
    queue_name = f"gust-test-{uuid.uuid4().hex[:8]}"
    env = dict(
        os.environ,
        DATABASE_URL=database_url(),
        GUST_QUEUE=queue_name,
        GUST_WORKERS="1",
        GUST_WORKER_STOP_TIMEOUT=str(STOP_TIMEOUT),
    )
    env.pop("GUST_SYNC_WORKER", None)
    monkeypatch.setattr(Conf, "SYNC", False)
    monkeypatch.setattr(Conf, "CLUSTER_NAME", queue_name)
    monkeypatch.setattr(Conf, "PREFIX", queue_name)
    if connection.vendor == "sqlite":
        env["GUST_BROKER"] = "orm"
    else:
        env.update(GUST_BROKER="redis", REDIS_URL=REDIS_URL)
        monkeypatch.setattr(Conf, "ORM", None)
        monkeypatch.setattr(Conf, "REDIS", REDIS_URL)
    queue.broker.cache_clear()
    proc = start_worker(env)
    proc.env = env
    yield proc
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        out, _ = proc.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    print(out)  # shown by pytest when the test fails
    queue.broker.cache_clear()


@pytest.mark.django_db(transaction=True)
def test_a_worker_process_runs_http_actions_from_the_queue(worker_process, outside_service):
    services.save_workflows(f"""
version: '2.0'
fetch:
  output: {{status: <% $.status %>}}
  tasks:
    call:
      action: std.http url={outside_service.url}/job
      publish: {{status: <% task().result.status %>}}
""")
    ex = services.start_execution("fetch")
    deadline = time.monotonic() + 60  # a bound, not an assertion on speed
    while time.monotonic() < deadline and worker_process.poll() is None:
        ex.refresh_from_db()
        if ex.state != "RUNNING":
            break
        time.sleep(0.1)
    assert worker_process.poll() is None, "the worker exited early"
    assert ex.state == "SUCCESS", ex.state_info
    assert ex.output == {"status": 200}
    assert [r["path"] for r in outside_service.requests] == ["/job"]
    assert WorkflowExecution.objects.get(id=ex.id).state == "SUCCESS"


def wait_for(predicate, proc, seconds=60):
    deadline = time.monotonic() + seconds  # a bound, not an assertion on speed
    while time.monotonic() < deadline and proc.poll() is None:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


@pytest.mark.django_db(transaction=True)
def test_a_running_worker_counts_as_live_until_it_is_stopped(worker_process):
    """The defect: the command marked itself stopped right after start, so the
    tracker stopping alone paused every running workflow."""
    assert wait_for(lambda: EngineProcess.objects.filter(kind="worker").exists(), worker_process)
    row = EngineProcess.objects.get(kind="worker")
    first_seen = row.last_seen
    assert wait_for(lambda: EngineProcess.objects.get(id=row.id).last_seen > first_seen, worker_process)
    row.refresh_from_db()
    assert row.stopped_at is None
    assert lifecycle.live_processes().filter(id=row.id).exists()
    worker_process.send_signal(signal.SIGTERM)
    assert worker_process.wait(timeout=40) == 0
    row.refresh_from_db()
    assert row.stopped_at is not None


def save_slow_workflow(outside_service):
    """``slow``: one std.http call that the outside service answers after 2 s."""
    services.save_workflows(
        f"version: '2.0'\nslow:\n  tasks:\n    call:\n      action: std.http url={outside_service.url}/slow/2\n"
    )


@pytest.mark.django_db(transaction=True)
def test_sigterm_to_the_worker_process_group_finishes_the_action_in_flight(worker_process, outside_service):
    save_slow_workflow(outside_service)
    ex = services.start_execution("slow")
    assert wait_for(lambda: any(r["path"] == "/slow/2" for r in outside_service.requests), worker_process)
    pool = psutil.Process(worker_process.pid).children(recursive=True)
    assert pool, "the worker runs its jobs in child processes"
    os.killpg(worker_process.pid, signal.SIGTERM)  # as a service manager or a terminal's Ctrl-C does
    out, _ = worker_process.communicate(timeout=40)
    assert worker_process.returncode == 0, out
    ex.refresh_from_db()
    assert ex.state == "SUCCESS", (ex.state, ex.state_info, out)
    assert [r["path"] for r in outside_service.requests] == ["/slow/2"]  # run once, not lost, not repeated
    assert not [p.pid for p in pool if p.is_running()], "no process of the pool outlives the worker"


@pytest.mark.django_db(transaction=True)
def test_jobs_a_stopping_worker_prefetched_go_back_to_the_queue(worker_process, outside_service):
    save_slow_workflow(outside_service)
    ids = [services.start_execution("slow").id for _ in range(4)]
    assert wait_for(lambda: len(outside_service.requests) == 1, worker_process)
    time.sleep(0.5)  # the pusher prefetches behind the job in flight
    worker_process.send_signal(signal.SIGTERM)
    out, _ = worker_process.communicate(timeout=40)
    assert worker_process.returncode == 0, out
    assert len(outside_service.requests) == 1, out  # one worker, one job in flight; the rest were not run
    assert "prefetched job(s) to the queue" in out, out
    second = start_worker(worker_process.env)
    try:
        # paused by the shutdown, resumed by the next start, then finished
        finished = wait_for(lambda: WorkflowExecution.objects.filter(id__in=ids, state="SUCCESS").count() == 4, second)
    finally:
        second.send_signal(signal.SIGTERM)
        out2, _ = second.communicate(timeout=40)
    assert finished, out2
    assert set(WorkflowExecution.objects.filter(id__in=ids).values_list("state", flat=True)) == {"SUCCESS"}
    assert len(outside_service.requests) == 4  # each exactly once: none lost, none repeated


@pytest.mark.django_db(transaction=True)
def test_a_stopping_worker_waits_for_a_long_job_only_until_its_stop_timeout(worker_process, outside_service):
    services.save_workflows(
        f"version: '2.0'\nlong:\n  tasks:\n    call:\n      action: std.http url={outside_service.url}/slow/60\n"
    )
    ex = services.start_execution("long")
    assert wait_for(lambda: len(outside_service.requests) == 1, worker_process)
    worker_process.send_signal(signal.SIGTERM)
    out, _ = worker_process.communicate(timeout=STOP_TIMEOUT + 20)  # far less than the job's 60 s
    assert worker_process.returncode == 0, out
    assert "still running after 5 s; stopping them" in out
    action = ActionExecution.objects.get(workflow_execution=ex)
    assert action.state == "RUNNING" and action.worker_started_at is not None  # the sweep fails it: worker lost
