"""Bounds through the services, against a real database: a tight local loop
yields its transaction after the step limit and stays cancellable with a
bounded snapshot; oversized or non-JSON input is refused before anything is
stored."""

import pytest

from workflows import queue, services
from workflows.errors import InvalidInput
from workflows.models import TaskExecution, WorkflowExecution

from .engine.test_limits import COUNTED

pytestmark = pytest.mark.django_db


@pytest.fixture
def steps(settings):
    settings.GUST = {**settings.GUST, "ENGINE_STEPS_PER_TRANSACTION": 20}
    services.save_workflows(COUNTED)


@pytest.fixture
def continuations(monkeypatch):
    """The continuation jobs handed to the worker queue (not run)."""
    queued = []
    monkeypatch.setattr(queue, "continue_later", queued.append)
    return queued


def test_a_tight_loop_returns_at_the_step_limit_and_finishes_in_later_transactions(
    steps, continuations, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        ex = services.start_execution("counted")
    ex.refresh_from_db()
    assert ex.state == "RUNNING" and continuations == [ex.id]
    assert TaskExecution.objects.filter(workflow_execution=ex).count() == 21  # 20 started, 1 IDLE
    transactions = 1
    while ex.state == "RUNNING":
        services.continue_execution(ex.id)
        transactions += 1
        ex.refresh_from_db()
    assert ex.state == "SUCCESS" and ex.output == {"n": 120}
    assert transactions == 7  # 121 tasks, 20 per transaction


def test_an_endless_loop_is_cancelled_between_its_transactions(steps, continuations):
    ex = services.start_execution("counted", {"until": 10**9})
    services.continue_execution(ex.id)
    services.change_execution_state(ex.id, "CANCELLED")
    services.continue_execution(ex.id)  # the job that was already queued
    ex.refresh_from_db()
    assert ex.state == "CANCELLED"
    states = set(TaskExecution.objects.filter(workflow_execution=ex).values_list("state", flat=True))
    assert states == {"SUCCESS", "CANCELLED"}
    assert TaskExecution.objects.filter(workflow_execution=ex).count() == 41


def test_what_a_step_loads_does_not_grow_with_the_loop(steps, continuations, monkeypatch):
    ex = services.start_execution("counted", {"until": 10**9})
    for _ in range(5):
        services.continue_execution(ex.id)
    ex.refresh_from_db()
    assert TaskExecution.objects.filter(workflow_execution=ex).count() == 121
    assert ex.runtime["seq"] == 121 and ex.runtime["counts"] == {"IDLE": 1}
    stores = []
    real = services._RowStore

    def recording(execution, **kwargs):
        stores.append(real(execution, **kwargs))
        return stores[-1]

    monkeypatch.setattr(services, "_RowStore", recording)
    services.continue_execution(ex.id)
    # The IDLE task, then the latest of each name a transition asks for:
    # a handful of rows, not the 121 of the loop so far.
    assert 1 <= len(stores[0].task_rows) <= 3


def test_a_loop_whose_continuation_job_was_lost_is_continued_by_the_periodic_sweep(steps, continuations):
    from datetime import timedelta

    from django.utils import timezone

    ex = services.start_execution("counted")  # its job is never run: a crash after commit
    assert services.continue_stalled() == 0  # not stalled yet: its job may be on the way
    assert services.continue_stalled(now=timezone.now() + timedelta(seconds=60)) == 1
    assert TaskExecution.objects.filter(workflow_execution=ex).count() == 41


def test_handled_failures_are_not_loaded_but_an_unhandled_one_still_fails_the_workflow(settings):
    services.save_workflows("""
version: '2.0'
retrying:
  vars: {n: 0}
  tasks:
    start:
      action: std.noop
      on-success: [t1]
    t1:
      action: std.fail
      publish-on-error: {n: <% $.n + 1 %>}
      on-error:
        - t1: <% $.n < 5 %>
""")
    ex = services.start_execution("retrying")
    ex.refresh_from_db()
    assert ex.state == "ERROR"
    assert ex.state_info.startswith("Failure caused by error in tasks: t1")
    assert ex.state_info.count("task_ex_id") == 1  # only the last one was not handled


def test_workflow_input_over_the_field_size_limit_is_refused_and_nothing_is_stored(settings, steps):
    settings.GUST = {**settings.GUST, "EXECUTION_FIELD_SIZE_LIMIT_KB": 1}
    with pytest.raises(InvalidInput, match="Invalid input: input: larger than the size limit of 1 KB"):
        services.start_execution("counted", {"until": "x" * 2000})
    assert WorkflowExecution.objects.count() == 0


def test_the_dashboard_start_form_refuses_nan_and_keeps_json_nested_too_deep_as_text(client, admin_user, steps):
    client.force_login(admin_user)
    r = client.post("/workflows/counted/", {"input__until": "NaN"})
    assert r.status_code == 400 and "input.until: nan is not a JSON number" in r.content.decode()
    assert WorkflowExecution.objects.count() == 0
    deep = "[" * 5000 + "]" * 5000
    r = client.post("/workflows/counted/", {"input__until": deep})
    assert r.status_code == 302
    assert WorkflowExecution.objects.get().input == {"until": deep}
