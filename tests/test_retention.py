"""The execution expiration policy (workflows/retention.py) and
``manage.py expire_executions``: what goes, what stays, batches, and bad settings."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.core.management import CommandError, call_command
from django.utils import timezone

from approvals.models import Approval
from tracker.models import TrackedAction
from tracker.runner import Tracker
from workflows import retention, services
from workflows.models import ActionExecution, TaskExecution, WorkflowExecution

pytestmark = pytest.mark.django_db

WORKFLOWS = """
version: '2.0'
quick:
  tasks:
    a: {action: std.noop, on-success: [b]}
    b: {action: std.noop}
waits:
  tasks:
    t: {action: std.async_noop}
"""


@pytest.fixture(autouse=True)
def workflows():
    services.save_workflows(WORKFLOWS)
    retention._next_evaluation[0] = 0.0


def finished(n=1, minutes_ago=120, state="SUCCESS") -> list[WorkflowExecution]:
    out = []
    for _ in range(n):
        ex = services.start_execution("quick", {})
        assert ex.state == "SUCCESS"
        WorkflowExecution.objects.filter(id=ex.id).update(
            state=state, updated_at=timezone.now() - timedelta(minutes=minutes_ago)
        )
        out.append(ex)
    return out


def running(minutes_ago=120) -> WorkflowExecution:
    ex = services.start_execution("waits", {})
    WorkflowExecution.objects.filter(id=ex.id).update(updated_at=timezone.now() - timedelta(minutes=minutes_ago))
    return ex


def ids() -> set[str]:
    return set(WorkflowExecution.objects.values_list("id", flat=True))


def pol(**kw) -> retention.Policy:
    return retention.Policy(**{"older_than": 60, **kw})


def test_old_finished_executions_go_with_their_rows_and_the_rest_stays():
    old = finished(2) + finished(1, state="ERROR") + finished(1, state="CANCELLED")
    young = finished(1, minutes_ago=10)
    busy = running()
    gone_actions = list(ActionExecution.objects.filter(workflow_execution__in=old).values_list("id", flat=True))

    out = retention.run(pol())

    assert (out.executions, out.tasks, out.actions) == (4, 8, 8)
    assert ids() == {young[0].id, busy.id}
    assert not TaskExecution.objects.filter(workflow_execution_id__in=[e.id for e in old]).exists()
    assert not ActionExecution.objects.filter(id__in=gone_actions).exists()
    assert ActionExecution.objects.filter(workflow_execution=busy, state="RUNNING").count() == 1


def test_an_execution_with_a_running_child_or_a_live_action_stays():
    with_child, with_action, plain = finished(3)
    task = TaskExecution.objects.filter(workflow_execution=with_child).first()
    child = WorkflowExecution.objects.create(
        workflow_id="x",
        workflow_name="sub",
        spec={},
        state="RUNNING",
        task_execution_id=task.id,
        root_execution_id=with_child.id,
    )
    ActionExecution.objects.filter(workflow_execution=with_action).update(state="RUNNING")

    assert retention.run(pol()).executions == 1
    assert ids() == {with_child.id, child.id, with_action.id}

    WorkflowExecution.objects.filter(id=child.id).update(state="SUCCESS")
    out = retention.run(pol())
    assert (out.executions, out.children) == (1, 1)  # the root takes its finished sub-workflow with it
    assert ids() == {with_action.id}


def test_a_sub_workflow_is_never_deleted_on_its_own():
    root = running()
    task = TaskExecution.objects.filter(workflow_execution=root).first()
    child = WorkflowExecution.objects.create(
        workflow_id="x",
        workflow_name="sub",
        spec={},
        state="SUCCESS",
        task_execution_id=task.id,
        root_execution_id=root.id,
    )
    WorkflowExecution.objects.filter(id=child.id).update(updated_at=timezone.now() - timedelta(days=9))
    assert retention.run(pol()).executions == 0
    assert child.id in ids()


def test_tracking_rows_go_and_approvals_stay_as_the_audit_record():
    (ex,) = finished(1)
    action = ActionExecution.objects.filter(workflow_execution=ex).first()
    TrackedAction.objects.create(action=action, next_query_at=timezone.now())
    approval = Approval.objects.create(action=action, execution_id=ex.id, title="ok?", status="APPROVED")

    retention.run(pol())

    assert not TrackedAction.objects.exists()
    approval.refresh_from_db()
    assert approval.action_id is None and approval.execution_id == ex.id


def test_max_finished_executions_keeps_the_newest():
    oldest = finished(3, minutes_ago=30)
    newer = finished(2, minutes_ago=5)
    busy = running(minutes_ago=600)
    out = retention.run(retention.Policy(max_finished_executions=2))
    assert out.by_reason == {"older_than": 0, "max_finished_executions": 3}
    assert ids() == {e.id for e in newer} | {busy.id}
    assert not set(e.id for e in oldest) & ids()


def test_ignored_states_stay():
    err = finished(1, state="ERROR")
    finished(1)
    retention.run(pol(ignored_states=("ERROR",)))
    assert ids() == {err[0].id}


def test_batches_and_the_time_budget():
    finished(5)
    progress = []
    out = retention.run(pol(batch_size=2), progress=lambda o: progress.append(o.executions))
    assert (out.batches, out.executions, out.depleted) == (3, 5, True)
    assert progress == [2, 4, 5]

    finished(5)
    out = retention.run(pol(batch_size=2), time_budget=0)  # stops after the first batch
    assert (out.batches, out.executions, out.depleted) == (1, 2, False)
    assert len(ids()) == 3


def test_dry_run_counts_and_deletes_nothing():
    finished(3)
    finished(2, minutes_ago=5)
    before = ids()
    out = retention.run(pol(max_finished_executions=1), dry_run=True)
    assert out.by_reason == {"older_than": 3, "max_finished_executions": 1}
    assert (out.executions, out.tasks, out.actions) == (4, 8, 8)
    assert ids() == before


def test_periodic_is_off_by_default_and_runs_once_per_interval(settings):
    finished(2)
    assert retention.periodic().executions == 0
    assert len(ids()) == 2
    settings.GUST = {**settings.GUST, "EXPIRATION": {"EVALUATION_INTERVAL": 10, "OLDER_THAN": 60}}
    assert retention.periodic().executions == 2
    finished(1)
    assert retention.periodic().executions == 0  # within the interval: not evaluated
    retention._next_evaluation[0] = 0.0
    assert retention.periodic().executions == 1


def test_the_tracker_cycle_runs_the_policy(settings):
    finished(2)
    settings.GUST = {**settings.GUST, "EXPIRATION": {"EVALUATION_INTERVAL": "1", "OLDER_THAN": "60"}}
    settings.TRACKER = {**settings.TRACKER, "PERIODIC": ["workflows.retention.periodic"]}
    Tracker(thread_pool_size=1).run_once()
    assert not ids()


@pytest.mark.parametrize(
    "expiration, message",
    [
        (
            {"BATCH_SIZE": "abc"},
            "GUST['EXPIRATION']['BATCH_SIZE'] (GUST_EXPIRATION_BATCH_SIZE) must be an integer from 1 "
            "to 10000, not 'abc'",
        ),
        ({"BATCH_SIZE": 0}, "must be an integer from 1 to 10000, not 0"),
        ({"OLDER_THAN": "0.5"}, "is in minutes, at least 1"),
        ({"OLDER_THAN": "-3"}, "must be a number of at least 0, not '-3'"),
        ({"OLDER_THAN": "nan"}, "must be a number of at least 0, not 'nan'"),
        ({"IGNORED_STATES": "SUCCESS,RUNNING"}, "RUNNING is not a finished state"),
        ({"OLDERTHAN": 5}, "unknown keys ['OLDERTHAN']"),
    ],
)
def test_bad_settings_are_refused_with_the_setting_named(settings, expiration, message):
    settings.GUST = {**settings.GUST, "EXPIRATION": expiration}
    with pytest.raises(ImproperlyConfigured) as exc:
        retention.policy()
    assert message in str(exc.value)
    assert [e.id for e in retention.check_expiration_settings()] == ["gust.E101"]


def test_the_command_shows_progress_and_dry_run(settings):
    finished(3)
    out = StringIO()
    call_command("expire_executions", "--older-than", "60", "--dry-run", stdout=out)
    assert "would delete 3 execution(s)" in out.getvalue()
    assert len(ids()) == 3
    out = StringIO()
    call_command("expire_executions", "--older-than", "60", "--batch-size", "2", stdout=out)
    text = out.getvalue()
    assert "batch 1: 2 execution(s) deleted so far" in text and "batch 2: 3 execution(s)" in text
    assert "deleted 3 execution(s) (+0 sub-workflow), 6 task and 6 action execution(s) in 2 batch(es)" in text
    assert not ids()


@pytest.mark.parametrize(
    "args, message",
    [
        ([], "Nothing to expire by"),
        (["--older-than", "60", "--batch-size", "0"], "--batch-size must be from 1 to 10000"),
        (["--older-than", "0.2"], "--older-than is in minutes"),
        (["--max-finished-executions", "-1"], "--max-finished-executions must be at least 0"),
    ],
)
def test_the_command_refuses_bad_options(args, message):
    finished(1)
    with pytest.raises(CommandError, match=message.replace("-", r"\-")):
        call_command("expire_executions", *args, stdout=StringIO())
    assert len(ids()) == 1


def test_a_sub_workflow_started_during_a_run_is_found_by_the_next_batch():
    """The first batch saw no sub-workflows anywhere; one created later is still deleted with its root."""
    first, second = finished(2)
    subworkflows = retention._SubWorkflows()
    assert not subworkflows.seen
    qs = retention._expired(pol(), timezone.now()).filter(id=first.id)
    assert retention.delete_batch(qs, 10, subworkflows)[:2] == (1, 0)
    task = TaskExecution.objects.filter(workflow_execution=second).first()
    WorkflowExecution.objects.create(
        workflow_id="x",
        workflow_name="sub",
        spec={},
        state="SUCCESS",
        task_execution_id=task.id,
        root_execution_id=second.id,
    )
    qs = retention._expired(pol(), timezone.now()).filter(id=second.id)
    assert retention.delete_batch(qs, 10, subworkflows)[:2] == (1, 1)
    assert not ids()
