"""An action's deadline starts when a worker starts it, and a job the broker
delivers again never runs its action a second time: a lost worker's action
fails "worker lost" one lease later instead (issue: lost jobs re-sent behind
the user's back; deadlines that counted queue time)."""

from datetime import timedelta

import pytest
from django.utils import timezone

from workflows import dispatch, queue, services
from workflows.models import ActionExecution, WorkflowExecution

pytestmark = pytest.mark.django_db


@pytest.fixture
def queued(outside_service, django_capture_on_commit_callbacks, settings):
    """A std.http action committed and queued, which no worker has taken yet."""
    settings.GUST = {**settings.GUST, "WORKER_QUEUE_TIMEOUT": 3600, "WORKER_LEASE": 30}
    services.save_workflows(
        f"version: '2.0'\ncall:\n  tasks:\n    c:\n      action: std.http url={outside_service.url}/job\n"
    )
    with django_capture_on_commit_callbacks(execute=False):  # the job stays in the queue
        ex = services.start_execution("call")
    return ex, ActionExecution.objects.get(workflow_execution=ex)


def sweep_at(seconds_from_now: float) -> int:
    return services.fail_overdue_actions(now=timezone.now() + timedelta(seconds=seconds_from_now)).failed


def test_time_in_the_queue_does_not_count_against_the_action(queued):
    ex, action = queued
    assert sweep_at(700) == 0  # the old 600 s worker deadline counted from dispatch
    assert ActionExecution.objects.get(id=action.id).state == "RUNNING"
    dispatch.run_action(action.id)  # a worker takes it late, and has its full time
    assert WorkflowExecution.objects.get(id=ex.id).state == "SUCCESS"


def test_an_action_no_worker_takes_fails_at_its_queue_deadline_without_running(queued, outside_service):
    ex, action = queued
    assert sweep_at(3700) == 1
    action.refresh_from_db()
    assert action.state == "ERROR" and "Not started: no worker took it" in action.output["result"]
    dispatch.run_action(action.id)  # the job turns up after all: nothing runs
    assert outside_service.requests == []
    assert WorkflowExecution.objects.get(id=ex.id).state == "ERROR"


def test_a_job_delivered_again_after_its_worker_was_lost_does_not_run_the_action_twice(queued, outside_service):
    ex, action = queued
    assert services.claim_for_worker(action.id)  # the first worker started it, then died (kill -9)
    dispatch.run_action(action.id)  # the broker hands the same job out again
    assert outside_service.requests == []  # not repeated behind the user's back
    assert ActionExecution.objects.get(id=action.id).state == "RUNNING"
    assert sweep_at(5) == 0  # the lease still holds
    assert sweep_at(31) == 1  # one lease after the last renewal
    action.refresh_from_db()
    assert action.state == "ERROR" and action.output["result"].startswith("Worker lost")
    assert WorkflowExecution.objects.get(id=ex.id).state == "ERROR"


@pytest.mark.django_db(transaction=True)  # the lease is renewed from another thread, in its own transactions
def test_a_running_worker_renews_its_lease(outside_service, settings, monkeypatch):
    settings.GUST = {**settings.GUST, "WORKER_LEASE": 0.3}
    services.save_workflows(
        f"version: '2.0'\ncall:\n  tasks:\n    c:\n      action: std.http url={outside_service.url}/slow/1\n"
    )
    with monkeypatch.context() as patched:
        patched.setattr(queue, "run_actions", lambda ids: None)  # the job stays in the queue
        ex = services.start_execution("call")
    renewals = []
    real_renew = services.renew_lease
    monkeypatch.setattr(services, "renew_lease", lambda a: renewals.append(a) or real_renew(a))
    dispatch.run_action(ActionExecution.objects.get(workflow_execution=ex).id)
    assert renewals  # while the slow call ran
    assert WorkflowExecution.objects.get(id=ex.id).state == "SUCCESS"


def test_every_running_async_action_has_a_deadline_unless_it_ends_itself(settings):
    settings.GUST = {**settings.GUST, "ASYNC_ACTION_TIMEOUT": 3600}
    services.save_workflows("version: '2.0'\nwait:\n  tasks:\n    w: {action: std.async_noop}\n")
    ex = services.start_execution("wait")
    action = ActionExecution.objects.get(workflow_execution=ex)
    assert action.deadline is not None
    assert timedelta(minutes=59) < action.deadline - timezone.now() <= timedelta(hours=1)
    assert sweep_at(3700) == 1
    assert "without a result, callback or heartbeat" in ActionExecution.objects.get(id=action.id).output["result"]


def test_a_handed_over_async_action_keeps_a_deadline(outside_service, settings, django_capture_on_commit_callbacks):
    settings.GUST = {**settings.GUST, "ASYNC_ACTION_TIMEOUT": 3600}
    services.save_workflows(
        f"version: '2.0'\nm:\n  tasks:\n    j:\n      action: std.mistral_http url={outside_service.url}/go\n"
    )
    with django_capture_on_commit_callbacks(execute=True):  # the test settings run the worker job inline
        ex = services.start_execution("m")
    action = ActionExecution.objects.get(workflow_execution=ex)
    assert outside_service.requests and action.state == "RUNNING"
    assert action.deadline is not None and action.deadline - timezone.now() > timedelta(minutes=59)


def test_an_action_whose_job_was_lost_is_queued_again_and_runs_once(queued, outside_service, monkeypatch):
    ex, action = queued
    sent = []
    monkeypatch.setattr(dispatch, "enqueue", sent.extend)
    assert dispatch.redispatch_unclaimed() == 0  # too young: its job may just be waiting in the queue
    later = timezone.now() + timedelta(seconds=301)
    assert dispatch.redispatch_unclaimed(now=later) == 1
    assert sent == [action.id]
    assert dispatch.redispatch_unclaimed(now=later) == 0  # once per interval
    dispatch.run_action(action.id)  # the new job
    dispatch.run_action(action.id)  # and the old one, turning up after all
    assert len(outside_service.requests) == 1
    assert WorkflowExecution.objects.get(id=ex.id).state == "SUCCESS"
    claimed = ActionExecution.objects.get(id=action.id)
    assert dispatch.redispatch_unclaimed(now=later + timedelta(seconds=600)) == 0 and claimed.state == "SUCCESS"


def test_a_lost_workers_action_with_safe_rerun_is_queued_again_and_runs_once(
    outside_service, django_capture_on_commit_callbacks, settings
):
    settings.GUST = {**settings.GUST, "WORKER_QUEUE_TIMEOUT": 3600, "WORKER_LEASE": 30}
    services.save_workflows(
        f"version: '2.0'\ncall:\n  tasks:\n    c:\n      action: std.http url={outside_service.url}/job\n"
        "      safe-rerun: true\n"
    )
    with django_capture_on_commit_callbacks(execute=False):
        ex = services.start_execution("call")
    action = ActionExecution.objects.get(workflow_execution=ex)
    assert services.claim_for_worker(action.id)  # a worker started it, then died
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        assert sweep_at(31) == 0  # not failed: queued again
    assert callbacks  # the job went back to the queue (run inline in tests)
    ex.refresh_from_db()
    assert ex.state == "SUCCESS" and len(outside_service.requests) == 1
