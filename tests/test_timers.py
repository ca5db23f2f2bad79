"""Durable timers on the database: retry delays and timeouts are rows the
timer loop fires; a restart loses none and a timer fires once."""

from datetime import timedelta

import pytest
from django.utils import timezone

from workflows import services
from workflows.models import ActionExecution, TaskExecution, Timer

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
