"""Durable timers on the database: retry delays and timeouts are rows the
timer loop fires; a restart loses none and a timer fires once."""

from datetime import timedelta

import pytest
from django.utils import timezone

from workflows import services
from workflows.models import ActionExecution, TaskExecution, Timer, WorkflowExecution

pytestmark = pytest.mark.django_db

RETRY = """
version: '2.0'
retrying:
  tasks:
    t:
      action: std.fail
      retry: {count: 1, delay: 30}
"""

TIMEOUT = """
version: '2.0'
slow:
  tasks:
    t:
      action: std.async_noop
      timeout: 60
      on-error: [cleanup]
    cleanup: {}
"""


def later(seconds):
    return timezone.now() + timedelta(seconds=seconds)


def test_a_retry_waits_on_a_stored_timer_and_runs_when_it_is_due():
    services.save_workflows(RETRY)
    ex = services.start_execution("retrying")
    task = TaskExecution.objects.get(workflow_execution=ex)
    assert task.state == "RUNNING_DELAYED"
    [timer] = Timer.objects.filter(execution=ex)
    assert timer.kind == "retry" and timer.task_execution_id == task.id
    assert services.fire_due_timers(now=later(10)) == 0  # not due yet
    assert services.fire_due_timers(now=later(31)) == 1
    assert services.fire_due_timers(now=later(31)) == 0  # fired once
    ex.refresh_from_db()
    assert ex.state == "ERROR"
    assert ActionExecution.objects.filter(task_execution=task).count() == 2
    assert not Timer.objects.filter(execution=ex).exists()


def test_a_timeout_fails_the_action_and_the_task_and_on_error_runs():
    services.save_workflows(TIMEOUT)
    ex = services.start_execution("slow")
    action = ActionExecution.objects.get(workflow_execution=ex)
    assert services.fire_due_timers(now=later(61)) == 1
    ex.refresh_from_db()
    action.refresh_from_db()
    assert action.state == "ERROR" and ex.state == "SUCCESS"
    t = TaskExecution.objects.get(workflow_execution=ex, name="t")
    assert t.state == "ERROR" and t.state_info == "Task timed out [timeout(s)=60]."
    assert not Timer.objects.exists()


def test_a_timeout_timer_is_dropped_when_the_task_finishes_first():
    services.save_workflows(TIMEOUT)
    ex = services.start_execution("slow")
    action = ActionExecution.objects.get(workflow_execution=ex)
    services.complete_action(action.id, "SUCCESS", {"ok": True})
    assert not Timer.objects.exists()
    ex.refresh_from_db()
    assert ex.state == "SUCCESS"


def test_the_execution_page_says_what_a_task_waits_for(client):
    services.save_workflows(RETRY.replace("count: 1", "count: 2"))
    ex = services.start_execution("retrying")
    html = client.get(f"/executions/{ex.id}/").content.decode()
    assert "retry 1 of 2 at " in html
    services.save_workflows(TIMEOUT)
    ex = services.start_execution("slow")
    assert "times out at " in client.get(f"/executions/{ex.id}/").content.decode()
    # The count comes from the parsed policies: the one-line form and task-defaults say "of N" too.
    services.save_workflows(
        "version: '2.0'\ndefaulted:\n  task-defaults:\n    retry: count=3 delay=30\n"
        "  tasks:\n    t: {action: std.fail}\n"
    )
    ex = services.start_execution("defaulted")
    assert "retry 1 of 3 at " in client.get(f"/executions/{ex.id}/").content.decode()


@pytest.mark.django_db(transaction=True)
def test_two_processes_firing_at_once_fire_each_timer_once():
    import threading

    from django.db import connection

    services.save_workflows(RETRY)
    executions = [services.start_execution("retrying") for _ in range(6)]
    assert Timer.objects.count() == 6
    fired, errors = [], []

    def sweep():
        try:
            fired.append(services.fire_due_timers(now=later(31)))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=sweep) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == [] and sum(fired) == 6
    for ex in executions:
        ex.refresh_from_db()
        assert ex.state == "ERROR"
        assert ActionExecution.objects.filter(workflow_execution=ex).count() == 2  # one retry each, not two


def test_the_timer_loop_of_a_new_process_fires_timers_stored_before_it_started(settings):
    from workflows.timers import TimerLoop

    services.save_workflows(RETRY.replace("delay: 30", "delay: 0.01"))
    ex = services.start_execution("retrying")
    assert Timer.objects.filter(execution=ex).exists()
    import time

    time.sleep(0.05)
    assert TimerLoop().run_once() == 1
    ex.refresh_from_db()
    assert ex.state == "ERROR"


@pytest.mark.django_db(transaction=True)
def test_the_tracker_process_fires_wait_before_and_retry_timers():
    """The real process that runs timers: manage.py run_tracker."""
    import os
    import subprocess
    import sys
    import time

    from tests.test_worker_process import ROOT, database_url

    services.save_workflows("""
version: '2.0'
timed:
  tasks:
    w:
      action: std.echo output=hi
      wait-before: 0.5
      on-success: [r]
    r:
      action: std.fail
      retry: {count: 2, delay: 0.5}
      on-error: [done]
    done: {}
""")
    env = dict(os.environ, DATABASE_URL=database_url())
    env.pop("GUST_SYNC_WORKER", None)
    proc = subprocess.Popen(
        [sys.executable, "manage.py", "run_tracker"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        ex = services.start_execution("timed")
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            ex.refresh_from_db()
            if ex.state != "RUNNING":
                break
            time.sleep(0.1)
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    assert ex.state == "SUCCESS", out[-3000:]
    assert ActionExecution.objects.filter(workflow_execution=ex, task_name="r").count() == 3


def test_an_execution_that_ends_with_a_timer_left_deletes_it_and_one_that_never_had_one_asks_nothing():
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    services.save_workflows(TIMEOUT)
    ex = services.start_execution("slow")
    assert Timer.objects.filter(execution=ex).exists()
    services.change_execution_state(ex.id, "CANCELLED")  # the timeout's timer is still due
    assert not Timer.objects.filter(execution=ex).exists()

    # A row made before the mark existed (no key in its runtime) is treated as having had timers.
    ex = services.start_execution("slow")
    runtime = dict(WorkflowExecution.objects.get(id=ex.id).runtime)
    assert runtime.pop(services.HAD_TIMERS) is True
    WorkflowExecution.objects.filter(id=ex.id).update(runtime=runtime)
    services.change_execution_state(ex.id, "CANCELLED")
    assert not Timer.objects.filter(execution=ex).exists()

    services.save_workflows("version: '2.0'\nquick:\n  tasks:\n    t: {action: std.noop}\n")
    with CaptureQueriesContext(connection) as q:
        ex = services.start_execution("quick")
    assert ex.state == "SUCCESS"
    assert not [s for s in q.captured_queries if "workflows_timer" in s["sql"]]
