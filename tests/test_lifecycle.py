"""Graceful shutdown (seed 004): only the last process pauses, tagged; the
next start resumes exactly those."""

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.db import connection
from django.utils import timezone

from workflows import lifecycle, services
from workflows.models import EngineProcess, WorkflowExecution

pytestmark = pytest.mark.django_db
WAIT = "version: '2.0'\nwait:\n  tasks:\n    w: {action: std.async_noop}\n"


def states():
    return dict(WorkflowExecution.objects.values_list("id", "state"))


def test_only_the_last_process_pauses_and_the_next_start_resumes_exactly_those():
    services.save_workflows(WAIT)
    a = services.start_execution("wait").id
    b = services.start_execution("wait").id
    services.change_execution_state(b, "PAUSED")  # paused by a person
    worker = lifecycle.register("worker", "w1")
    tracker = lifecycle.register("tracker", "t1")
    assert lifecycle.unregister(worker) == 0  # the tracker still runs
    assert states() == {a: "RUNNING", b: "PAUSED"}
    assert lifecycle.unregister(tracker) == 1
    assert states() == {a: "PAUSED", b: "PAUSED"}
    assert WorkflowExecution.objects.get(id=a).state_info == lifecycle.SHUTDOWN_TAG
    lifecycle.register("worker", "w2")
    assert states() == {a: "RUNNING", b: "PAUSED"}
    assert WorkflowExecution.objects.get(id=b).state_info is None


def test_a_silent_process_does_not_count_as_alive():
    services.save_workflows(WAIT)
    services.start_execution("wait")
    lifecycle.register("worker", "dead")
    EngineProcess.objects.filter(name="dead").update(last_seen=timezone.now() - timedelta(minutes=5))
    me = lifecycle.register("tracker", "me")
    assert lifecycle.unregister(me) == 1


@pytest.mark.django_db(transaction=True)
def test_sigterm_to_the_last_tracker_process_pauses_running_workflows():
    services.save_workflows(WAIT)
    ex = services.start_execution("wait")
    s = connection.settings_dict
    url = (
        f"sqlite:///{s['NAME']}"
        if connection.vendor == "sqlite"
        else f"postgres://{s['USER'] or 'postgres'}@{s['HOST'] or '127.0.0.1'}:{s['PORT'] or 5432}/{s['NAME']}"
    )
    env = dict(os.environ, DATABASE_URL=url)
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "run_tracker", "--query-interval", "0.2"],
        cwd=Path(__file__).resolve().parent.parent,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 30  # a bound for start-up, not a speed assertion
    while time.monotonic() < deadline and not EngineProcess.objects.filter(kind="tracker").exists():
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert "was the last Gust process: paused 1 running workflow(s)" in out
    ex.refresh_from_db()
    assert ex.state == "PAUSED" and ex.state_info == lifecycle.SHUTDOWN_TAG


def test_a_process_of_this_host_whose_pid_is_gone_does_not_count_as_alive():
    """kill -9 leaves its row beating-fresh for up to ALIVE_SECONDS; the pid tells."""
    import socket

    services.save_workflows(WAIT)
    services.start_execution("wait")
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    lifecycle.register("worker", f"worker:{socket.gethostname()}:{gone.stdout.strip()}:abc123")
    me = lifecycle.register("tracker", f"tracker:{socket.gethostname()}:{os.getpid()}:def456")
    assert not lifecycle.live_processes(exclude=me).exists()
    assert lifecycle.unregister(me) == 1
