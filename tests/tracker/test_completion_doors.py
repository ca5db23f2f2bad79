"""Every door a result can come through labels its completion: how the
result came back (``mode``) and where (``door``), with the SQL statements it
spent. The notification door and the CLI are checked in their own tests
(test_mistral_workflow.py, tests/api/test_mistral_cli.py)."""

import base64
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission, User
from django.utils import timezone
from rest_framework.authtoken.models import Token

from approvals import services as approvals
from approvals.models import Approval
from tests.approvals.conftest import approval_workflow
from tracker import services as tracker_services
from tracker.models import CallbackInbox, Completion, TrackedAction
from tracker.queries import QueryResult
from tracker.runner import Tracker
from workflows import callbacks, services
from workflows.models import ActionExecution, Timer
from workflows.timers import TimerLoop

pytestmark = pytest.mark.django_db

HTTP = """
version: '2.0'
outside:
  input: [mode]
  tasks:
    job:
      action: std.mistral_http
      input: {url: "http://127.0.0.1:9/never-called", tracking: <% $.mode %>, status_url: "http://127.0.0.1:9/s"}
      on-success: [after]
    after:
      action: std.noop
"""

ASYNC = """
version: '2.0'
waiting:
  tasks:
    job:
      action: std.async_noop
      timeout: 60
      on-success: [after]
    after:
      action: std.noop
"""


@pytest.fixture(autouse=True)
def fast_passwords(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def http_action(mode="callback"):
    services.save_workflows(HTTP, update=True)
    ex = services.start_execution("outside", {"mode": mode})
    return ActionExecution.objects.get(workflow_execution=ex, task_name="job")


def async_action():
    services.save_workflows(ASYNC, update=True)
    ex = services.start_execution("waiting", {})
    return ActionExecution.objects.get(workflow_execution=ex, task_name="job")


def completion(action) -> tuple[str, str]:
    c = Completion.objects.get(action_id=action.id)
    assert c.statements and c.statements > 0, "the door counted its SQL statements"
    return c.mode, c.door


def put(client, action, **body):
    return client.put(
        f"/v2/action_executions/{action.id}",
        {"state": "SUCCESS", "output": {"ok": 1}, **body},
        content_type="application/json",
    )


def test_a_put_through_the_rest_api_is_by_hand_or_the_callback_the_action_asked_for(client):
    waiting = async_action()
    assert put(client, waiting).status_code == 200
    assert completion(waiting) == ("by hand", "api")
    called = http_action("callback")
    done = timezone.now() - timedelta(milliseconds=40)
    assert put(client, called, finished_at=done.isoformat()).status_code == 200
    assert completion(called) == ("callback", "api")  # Mistral's way: the outside system PUTs the result
    assert Completion.objects.get(action_id=called.id).outside_done_at == done
    hybrid = http_action("hybrid")
    assert put(client, hybrid, finished_at=str(done.timestamp())).status_code == 200  # epoch seconds as text
    assert completion(hybrid) == ("hybrid-callback", "api")
    assert Completion.objects.get(action_id=hybrid.id).outside_done_at is not None


@pytest.mark.parametrize("bad", ["yesterday", 1e300, -1, True, [1], {"a": 1}, "9" * 80, "2026-13-45T99:00:00"])
def test_a_bad_finished_at_is_ignored_never_a_server_error(client, bad):
    action = http_action("callback")
    assert put(client, action, finished_at=bad).status_code == 200
    assert Completion.objects.get(action_id=action.id).outside_done_at is None


def test_with_the_api_closed_a_put_by_an_operator_is_still_the_api_door(client, settings):
    settings.GUST = {**settings.GUST, "API_AUTH": True}
    user = User.objects.create_user("olga")
    user.user_permissions.add(Permission.objects.get(codename="complete_actions"))
    token = Token.objects.create(user=user)
    waiting = async_action()
    r = client.put(
        f"/v2/action_executions/{waiting.id}",
        {"state": "SUCCESS", "output": 1},
        content_type="application/json",
        headers={"X-Auth-Token": token.key},
    )
    assert r.status_code == 200
    assert completion(waiting) == ("by hand", "api")


def test_the_signed_url_and_the_early_callback_inbox(client):
    signed = http_action("callback")
    r = client.put(
        "/api/callbacks/" + callbacks.make_token(signed.id, signed.attempt),
        {"state": "SUCCESS"},
        content_type="application/json",
    )
    assert r.status_code == 200
    assert completion(signed) == ("callback", "signed-url")
    early = http_action("hybrid")
    CallbackInbox.objects.create(action_id=early.id, attempt=early.attempt, state="SUCCESS", output={"early": 1})
    assert tracker_services.process_inbox() == 1
    assert completion(early) == ("hybrid-callback", "inbox")


def test_the_tracker_polls_and_sweeps(settings):
    settings.TRACKER = {**settings.TRACKER, "QUERY_INTERVAL": 2.0}
    polled, hybrid = http_action("poll"), http_action("hybrid")
    overdue = async_action()
    ActionExecution.objects.filter(id=overdue.id).update(deadline=timezone.now() - timedelta(minutes=1))
    TrackedAction.objects.update(next_query_at=timezone.now() - timedelta(hours=1), scheduled=True)
    answer = QueryResult(True, "SUCCESS", {"ok": 2}, finished_at=timezone.now().timestamp())
    Tracker(queries=lambda name: lambda a: answer, thread_pool_size=1).run_once()
    assert completion(polled) == ("poll", "tracker")
    assert completion(hybrid) == ("hybrid-poll", "tracker")
    assert Completion.objects.get(action_id=polled.id).interval == 2.0  # the tracker's own QUERY_INTERVAL
    assert completion(overdue) == ("timeout", "sweep")


def test_a_timeout_fired_by_the_timer_loop():
    action = async_action()
    Timer.objects.update(due_at=timezone.now() - timedelta(seconds=1))
    assert TimerLoop().run_once() == 1
    assert completion(action) == ("timeout", "timer")


def test_an_async_action_that_fails_in_the_worker_before_the_outside_has_it(django_capture_on_commit_callbacks):
    services.save_workflows("""
version: '2.0'
broken:
  tasks:
    job:
      action: gust.http_job
      input: {url: "http://127.0.0.1:9/refused"}
""")
    with django_capture_on_commit_callbacks(execute=True):  # the worker job runs inline (GUST_SYNC_WORKER)
        services.start_execution("broken", {})
    action = ActionExecution.objects.get(name="gust.http_job")
    assert action.state == "ERROR"
    assert completion(action) == ("failed to start", "worker")


def test_the_operator_page_is_by_hand(client):
    user = User.objects.create_user("olga")
    user.user_permissions.add(Permission.objects.get(codename="complete_actions"))
    client.force_login(user)
    waiting = async_action()
    r = client.post(f"/ops/actions/{waiting.id}/complete", {"state": "SUCCESS", "output": '{"ok": true}'})
    assert r.status_code == 302
    assert completion(waiting) == ("by hand", "operator")


def asking(name, **approval_input):
    services.save_workflows(approval_workflow(name, **approval_input))
    ex = services.start_execution(name, {})
    return Approval.objects.get(execution_id=ex.id)


def test_approvals_decided_in_the_browser_by_the_api_or_by_expiry(client):
    alice = User.objects.create_user("alice", password="pw")
    User.objects.create_user("bob", password="pw")
    in_page, by_api = asking("page", quorum=1), asking("api", quorum=1)
    client.force_login(alice)
    assert client.post(f"/approvals/{in_page.id}/", {"decision": "approve", "data__amount": "5"}).status_code == 302
    basic = base64.b64encode(b"alice:pw").decode()
    r = client.post(
        f"/api/approvals/{by_api.id}/responses",
        {"decision": "reject"},
        content_type="application/json",
        headers={"Authorization": f"Basic {basic}"},
    )
    assert r.status_code == 201, r.content
    expiring = asking("expiring", expires_in=60)
    assert approvals.sweep(timezone.now() + timedelta(seconds=61))["expired"] == 1
    labels = {a.id: completion(a) for a in ActionExecution.objects.filter(name="gust.approval")}
    assert labels == {
        in_page.action_id: ("approval", "approval-page"),
        by_api.action_id: ("approval", "approval-api"),
        expiring.action_id: ("approval", "approval-expiry"),
    }


def test_the_admin_can_not_complete_an_action(admin_client):
    action = async_action()
    r = admin_client.post(f"/admin/workflows/actionexecution/{action.id}/change/", {"state": "SUCCESS"})
    assert r.status_code in (302, 403)  # read-only: a POST changes nothing
    action.refresh_from_db()
    assert action.state == "RUNNING" and not Completion.objects.exists()
