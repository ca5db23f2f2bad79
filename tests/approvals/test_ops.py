"""The operator console: permissions, the audit log, complete-by-hand,
tracking, rerun/skip and the waiting view."""

import re
from datetime import timedelta
from enum import StrEnum

import pytest
from django.contrib.auth.models import Permission, User
from django.utils import timezone

from approvals.errors import Forbidden
from core.states import State
from ops import services as ops
from ops.models import OperatorAction
from tracker.models import TrackedAction
from workflows import services as wf
from workflows.models import ActionExecution, TaskExecution

from .conftest import reload, tasks_of

pytestmark = pytest.mark.django_db

ASYNC = """
version: '2.0'
outside:
  tasks:
    call:
      action: std.async_noop
      on-success: [after]
    after:
      action: std.echo output=done
"""

FAILING = """
version: '2.0'
flaky:
  tasks:
    boom:
      action: std.fail
      on-success: [after]
    after:
      action: std.echo output=done
"""


def operator(*codenames, name="olga"):
    user = User.objects.create_user(name)
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    return User.objects.get(pk=user.pk)  # a fresh object: permissions are cached per instance


@pytest.fixture
def waiting_action(db):
    wf.save_workflows(ASYNC)
    ex = wf.start_execution("outside", {})
    return ActionExecution.objects.get(workflow_execution_id=ex.id, name="std.async_noop")


@pytest.fixture
def trackable(settings):
    # std.async_noop has no query function of its own; borrow the HTTP one so it can be tracked.
    settings.TRACKER = {**settings.TRACKER, "QUERIES": {"std.async_noop": "tracker.queries.http_status"}}


def test_complete_by_hand_moves_the_workflow_on_and_is_audited(client, waiting_action):
    client.force_login(operator("complete_actions"))
    url = f"/ops/actions/{waiting_action.id}/complete"
    page = client.get(url, {"next": f"/executions/{waiting_action.workflow_execution_id}/"})
    assert page.status_code == 200 and 'name="output"' in page.content.decode()
    bad = client.post(url, {"state": "SUCCESS", "output": "{not json"})
    assert bad.status_code == 400 and "Not valid JSON" in bad.content.decode()
    assert OperatorAction.objects.count() == 0
    r = client.post(url, {"state": "SUCCESS", "output": '{"ok": true}'})
    assert r.status_code == 302 and r["Location"] == f"/executions/{waiting_action.workflow_execution_id}/"
    ex = waiting_action.workflow_execution
    assert reload(ex).state == State.SUCCESS and tasks_of(ex)["after"] == State.SUCCESS
    entry = OperatorAction.objects.get()
    assert (entry.username, entry.kind, entry.target_id, entry.execution_id) == (
        "olga",
        "complete_action",
        waiting_action.id,
        ex.id,
    )
    assert entry.payload == {"state": "SUCCESS", "output": {"ok": True}}
    again = client.post(url, {"state": "ERROR", "output": '"late"'})
    assert again.status_code == 409 and "already SUCCESS" in again.content.decode()
    assert OperatorAction.objects.count() == 1


def test_complete_by_hand_needs_its_permission(client, waiting_action):
    client.force_login(operator("operate_executions"))
    url = f"/ops/actions/{waiting_action.id}/complete"
    assert client.get(url).status_code == 403
    with pytest.raises(Forbidden, match="ops.complete_actions"):
        ops.complete_action(operator("view_operatoraction", name="vic"), waiting_action.id, "SUCCESS", 1)
    assert ActionExecution.objects.get(id=waiting_action.id).state == State.RUNNING
    assert OperatorAction.objects.count() == 0


def test_start_and_stop_tracking_are_audited(client, waiting_action, trackable):
    client.force_login(operator("manage_tracking"))
    url = f"/ops/actions/{waiting_action.id}/tracking"
    r = client.post(url, {"track": "start"}, follow=True)
    assert "Started poll tracking of std.async_noop (call)." in r.content.decode()
    assert TrackedAction.objects.get(action_id=waiting_action.id).added_by == "operator"
    assert "Stop tracking" in r.content.decode()  # the execution page now offers the opposite
    client.post(url, {"track": "stop"})
    assert not TrackedAction.objects.exists()
    r = client.post(url, {"track": "stop"}, follow=True)
    assert "is not tracked" in r.content.decode()
    assert list(OperatorAction.objects.order_by("at", "id").values_list("kind", flat=True)) == ["track", "untrack"]


def test_tracking_an_action_without_a_query_function_is_refused(client, waiting_action):
    client.force_login(operator("manage_tracking"))
    r = client.post(f"/ops/actions/{waiting_action.id}/tracking", {"track": "start"}, follow=True)
    assert "No query function for std.async_noop" in r.content.decode()
    assert OperatorAction.objects.count() == 0 and not TrackedAction.objects.exists()


def test_skip_a_failed_task_and_the_workflow_goes_on(client):
    wf.save_workflows(FAILING)
    ex = wf.start_execution("flaky", {})
    assert reload(ex).state == State.ERROR
    client.force_login(operator("fix_tasks"))
    task = TaskExecution.objects.get(workflow_execution_id=ex.id, name="boom")
    html = client.get(f"/executions/{ex.id}/").content.decode()
    assert f'action="/ops/tasks/{task.id}/skip"' in html and f'action="/ops/tasks/{task.id}/rerun"' in html
    r = client.post(f"/ops/tasks/{task.id}/skip", follow=True)
    assert "Skipped task boom." in r.content.decode()
    assert reload(ex).state == State.SUCCESS and tasks_of(ex)["after"] == State.SUCCESS
    assert OperatorAction.objects.get().kind == "skip_task"
    r = client.post(f"/ops/tasks/{task.id}/skip", follow=True)  # no longer in ERROR
    assert r.status_code == 200 and OperatorAction.objects.count() == 1


def test_rerun_a_failed_task_is_audited(client):
    wf.save_workflows(FAILING)
    ex = wf.start_execution("flaky", {})
    client.force_login(operator("fix_tasks"))
    task = TaskExecution.objects.get(workflow_execution_id=ex.id, name="boom")
    client.post(f"/ops/tasks/{task.id}/rerun")
    entry = OperatorAction.objects.get()
    assert (entry.kind, entry.target_name, entry.execution_id) == ("rerun_task", "boom", ex.id)
    assert ActionExecution.objects.filter(task_execution__workflow_execution_id=ex.id, name="std.fail").count() == 2


def test_rerun_and_skip_need_their_permission(client):
    wf.save_workflows(FAILING)
    ex = wf.start_execution("flaky", {})
    client.force_login(operator("operate_executions"))
    task = TaskExecution.objects.get(workflow_execution_id=ex.id, name="boom")
    assert "ops/tasks/" not in client.get(f"/executions/{ex.id}/").content.decode()
    for verb in ("rerun", "skip"):
        r = client.post(f"/ops/tasks/{task.id}/{verb}")
        assert r.status_code == 403 and "ops.fix_tasks" in r.content.decode()
    assert reload(ex).state == State.ERROR and OperatorAction.objects.count() == 0
    assert client.post("/ops/tasks/nope/skip").status_code == 404


# --- the waiting view ------------------------------------------------------------------


def rows(html: str) -> dict[str, str]:
    """{action id: tracking mode} of the waiting table."""
    return dict(re.findall(r'data-action="([^"]+)">.*?class="chip mode-(\w+)"', html, re.S))


def test_the_waiting_view_shows_mode_age_and_deadline(client, people, start, waiting_action, trackable):
    approval_ex = start(expires_in=3600)
    approval_action = ActionExecution.objects.get(workflow_execution_id=approval_ex.id, name="gust.approval")
    r = client.get("/ops/waiting/")
    assert r.status_code == 200
    html = r.content.decode()
    assert rows(html) == {waiting_action.id: "callback", approval_action.id: "approval"}
    deadline = (timezone.now() + timedelta(seconds=3600)).strftime("%Y-%m-%d %H:%M")
    assert deadline in html and "overdue" not in html
    assert rows(client.get("/ops/waiting/", {"mode": "approval"}).content.decode()) == {approval_action.id: "approval"}
    ops.track(operator("manage_tracking"), waiting_action.id)
    live = client.get("/ops/waiting/", {"mode": "poll"}, headers={"X-Gust-Live": "1"}).content.decode()
    assert "<html" not in live and rows(live) == {waiting_action.id: "poll"} and "next query" in live


def test_finished_actions_leave_the_waiting_view(client, waiting_action):
    wf.complete_action(waiting_action.id, State.SUCCESS, None)
    assert "Nothing is waiting" in client.get("/ops/waiting/").content.decode()


def test_an_overdue_action_is_flagged(client, waiting_action):
    wf.extend_deadline(waiting_action.id, -60)
    assert "(overdue)" in client.get("/ops/waiting/").content.decode()


# --- the audit log -----------------------------------------------------------------------


def test_the_audit_log_page_filters_and_needs_a_login(client, waiting_action):
    olga = operator("operate_executions", "complete_actions")
    ops.change_execution_state(olga, waiting_action.workflow_execution_id, State.PAUSED)
    ops.complete_action(olga, waiting_action.id, "SUCCESS", {"by": "hand"})
    assert client.get("/ops/audit/")["Location"] == "/accounts/login/?next=/ops/audit/"
    client.force_login(olga)
    html = client.get("/ops/audit/").content.decode()
    assert html.index("Completed std.async_noop (call) as SUCCESS") < html.index("Paused execution of outside")
    only = client.get("/ops/audit/", {"kind": "pause"}).content.decode()
    assert "Paused execution" in only and "Completed" not in only
    assert "No operator action yet" in client.get("/ops/audit/", {"user": "someone"}).content.decode()


def test_the_audit_log_is_read_only_in_the_admin(client, waiting_action):
    olga = operator("operate_executions")
    entry = ops.change_execution_state(olga, waiting_action.workflow_execution_id, State.PAUSED)
    client.force_login(User.objects.create_superuser("root", "root@example.com", "pw"))
    listing = client.get("/admin/ops/operatoraction/")
    assert listing.status_code == 200 and "Paused execution of outside" in listing.content.decode()
    assert client.get(f"/admin/ops/operatoraction/{entry.pk}/change/").status_code == 200  # view only
    assert client.get("/admin/ops/operatoraction/add/").status_code == 403
    assert client.post(f"/admin/ops/operatoraction/{entry.pk}/delete/", {"post": "yes"}).status_code == 403
    with pytest.raises(TypeError):
        OperatorAction.objects.filter(pk=entry.pk).delete()
    assert OperatorAction.objects.count() == 1


def test_the_kinds_are_what_ops_models_tells_the_type_checker():
    # ops.models declares TextChoices to mypy as a StrEnum with labels and choices.
    Kind = OperatorAction.Kind
    assert issubclass(Kind, StrEnum) and Kind.RERUN_TASK == "rerun_task"
    assert Kind.RERUN_TASK.label == "rerun task" and ("track", "start tracking") in Kind.choices
