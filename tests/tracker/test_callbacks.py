"""Signed per-attempt callback URLs: every status code, and none changes state
when it refuses. Early callbacks wait in the inbox and apply exactly once."""

import threading
from datetime import timedelta

import pytest
from django.core import signing
from django.db import connection, transaction
from django.utils import timezone

from tracker import services as tracker_services
from tracker.models import CallbackInbox
from workflows import callbacks, services
from workflows.models import ActionExecution, TaskExecution, WorkflowExecution

pytestmark = pytest.mark.django_db

ASYNC_WF = """
version: '2.0'
job:
  output: {got: <% $.got %>}
  tasks:
    wait:
      action: std.async_noop
      publish: {got: <% task().result %>}
      on-success: [after]
    after:
      action: std.noop
"""


@pytest.fixture
def running():
    services.save_workflows(ASYNC_WF)
    ex = services.start_execution("job")
    action = ActionExecution.objects.get(workflow_execution=ex, state="RUNNING")
    return ex, action


def url_path(action):
    return "/api/callbacks/" + callbacks.make_token(action.id, action.attempt)


def put(client, path, state="SUCCESS", output=None):
    return client.put(path, {"state": state, "output": output}, content_type="application/json")


def test_mistral_http_sends_the_signed_url_beside_mistrals_header(
    outside_service, django_capture_on_commit_callbacks, settings
):
    services.save_workflows(
        f"version: '2.0'\nm:\n  tasks:\n    j:\n      action: std.mistral_http url={outside_service.url}/go\n"
    )
    with django_capture_on_commit_callbacks(execute=True):
        ex = services.start_execution("m")
    action = ActionExecution.objects.get(workflow_execution=ex)
    headers = outside_service.requests[0]["headers"]
    assert headers["Mistral-Callback-URL"] == settings.GUST["PUBLIC_URL"].rstrip("/")  # a base URL (seed 002)
    token = headers["Gust-Callback-URL"].rsplit("/api/callbacks/", 1)[1]
    assert callbacks.read_token(token, 60) == (action.id, 1)


def test_the_signed_url_completes_the_action_without_a_login(client, running):
    ex, action = running
    resp = put(client, url_path(action), output={"v": 1})
    assert resp.status_code == 200, resp.content
    assert resp.json()["state"] == "SUCCESS"
    ex.refresh_from_db()
    assert ex.state == "SUCCESS" and ex.output == {"got": {"v": 1}}


def test_same_result_again_is_200_and_a_different_one_is_409(client, running):
    ex, action = running
    path = url_path(action)
    put(client, path, output={"v": 1})
    again = put(client, path, output={"v": 1})
    assert again.status_code == 200 and again.json()["output"] == '{"result": {"v": 1}}'
    other = put(client, path, output={"v": 2})
    assert other.status_code == 409 and other.json()["state"] == "SUCCESS"
    action.refresh_from_db()
    assert action.output == {"result": {"v": 1}}
    assert TaskExecution.objects.filter(workflow_execution=ex, name="after").count() == 1


def test_an_older_attempt_and_an_expired_url_are_gone(client, running, settings):
    ex, action = running
    old = url_path(action)
    ActionExecution.objects.filter(id=action.id).update(attempt=2)  # the action was sent again
    assert put(client, old).status_code == 410
    settings.TRACKER = {**settings.TRACKER, "CALLBACK_TTL": -1}
    action.refresh_from_db()
    assert put(client, url_path(action)).status_code == 410
    action.refresh_from_db()
    assert action.state == "RUNNING"


def test_a_forged_token_is_refused(client, running):
    ex, action = running
    token = callbacks.make_token(action.id, 1)
    forged = token[:-3] + ("AAA" if not token.endswith("AAA") else "BBB")
    resp = put(client, "/api/callbacks/" + forged)
    assert resp.status_code == 403 and "faultstring" in resp.json()
    action.refresh_from_db()
    assert action.state == "RUNNING"


def test_a_bad_state_is_400(client, running):
    ex, action = running
    assert put(client, url_path(action), state="DONE").status_code == 400


def test_a_heartbeat_extends_the_deadline(client, running):
    ex, action = running
    resp = client.post(url_path(action) + "/heartbeat")
    assert resp.status_code == 200
    action.refresh_from_db()
    assert action.deadline > timezone.now() + timedelta(minutes=30)
    put(client, url_path(action), output=1)
    assert client.post(url_path(action) + "/heartbeat").status_code == 409


def test_a_callback_while_paused_is_kept_and_the_workflow_goes_on_at_resume(client, running):
    ex, action = running
    services.change_execution_state(ex.id, "PAUSED")
    assert put(client, url_path(action), output="late").status_code == 200
    # As Mistral: the result is stored and what follows is decided at resume.
    assert not TaskExecution.objects.filter(workflow_execution=ex, name="after").exists()
    ex = services.change_execution_state(ex.id, "RUNNING")
    assert ex.state == "SUCCESS" and ex.output == {"got": "late"}


@pytest.mark.django_db(transaction=True)
def test_a_callback_before_the_dispatch_commit_is_stored_and_applied_once(monkeypatch):
    """The outside system answers while the transaction that created the
    action is still open: the result waits in the inbox."""
    services.save_workflows(ASYNC_WF)
    created = {}
    ready, release = threading.Event(), threading.Event()

    def dispatching():
        with transaction.atomic():
            ex = services.start_execution("job")
            created["ex"] = ex
            created["action"] = ActionExecution.objects.get(workflow_execution=ex, state="RUNNING")
            ready.set()
            release.wait(30)
        connection.close()

    stored = threading.Event()
    real_create = CallbackInbox.objects.create

    def create_and_signal(**kwargs):
        stored.set()  # the callback found no visible action; let the dispatcher commit
        return real_create(**kwargs)

    monkeypatch.setattr(CallbackInbox.objects, "create", create_and_signal)
    outcome = {}

    def calling_back():
        a = created["action"]
        outcome["o"] = tracker_services.apply_callback(callbacks.make_token(a.id, 1), "SUCCESS", {"early": True})
        connection.close()

    t1 = threading.Thread(target=dispatching)
    t1.start()
    assert ready.wait(30)
    t2 = threading.Thread(target=calling_back)
    t2.start()
    assert stored.wait(30)
    release.set()
    t1.join(30)
    t2.join(30)
    assert outcome["o"].status == 202
    ex = created["ex"]
    assert WorkflowExecution.objects.get(id=ex.id).state == "RUNNING"
    assert tracker_services.process_inbox() == 1
    assert tracker_services.process_inbox() == 0  # exactly once
    ex.refresh_from_db()
    assert ex.state == "SUCCESS" and ex.output == {"got": {"early": True}}
    assert CallbackInbox.objects.get().outcome == "applied"


def test_a_token_signed_with_the_old_development_key_is_refused(client, running, settings):
    _, action = running
    forged = signing.TimestampSigner(key="dev-only-insecure-key-change-me", salt=callbacks.SALT).sign_object(
        {"a": action.id, "n": 1}
    )
    resp = put(client, "/api/callbacks/" + forged)
    assert resp.status_code == 403
    assert ActionExecution.objects.get(id=action.id).state == "RUNNING"


def test_a_token_for_an_action_that_does_not_exist_is_gone_and_stores_nothing(client, settings):
    settings.TRACKER = {**settings.TRACKER, "IN_FLIGHT_WINDOW": -1}  # every token is past its dispatch
    for n in range(5):
        resp = put(client, "/api/callbacks/" + callbacks.make_token(f"no-such-action-{n}", 1))
        assert resp.status_code == 410, resp.content
        assert "does not exist" in resp.json()["faultstring"]
    assert CallbackInbox.objects.count() == 0


def test_an_early_callback_is_stored_once_per_attempt(client):
    path = "/api/callbacks/" + callbacks.make_token("not-committed-yet", 1)
    assert put(client, path, output={"n": 1}).status_code == 202
    assert put(client, path, output={"n": 1}).status_code == 202  # the same result again: a no-op
    assert put(client, path, output={"n": 2}).status_code == 409  # a different one: refused
    assert list(CallbackInbox.objects.values_list("output", flat=True)) == [{"n": 1}]


def test_the_early_callback_inbox_is_bounded(client, settings):
    settings.TRACKER = {**settings.TRACKER, "INBOX_MAX": 3}
    codes = [put(client, "/api/callbacks/" + callbacks.make_token(f"early-{n}", 1)).status_code for n in range(5)]
    assert codes == [202, 202, 202, 429, 429]
    assert CallbackInbox.objects.count() == 3


def test_a_callback_is_one_transaction_without_lookups_it_does_not_need(client, running):
    """The completion's statements (bench/README.md, compare_completion): no
    successor search for a RUNNING action, no tracking-row DELETE for an
    action never tracked, no timer DELETE for an execution that never had one."""
    from django.test.utils import CaptureQueriesContext

    ex, action = running
    with CaptureQueriesContext(connection) as q:
        assert put(client, url_path(action), output={"v": 1}).status_code == 200
    # The notifier reads the webhook list again every NOTIFIER_CACHE_SECONDS
    # (webhooks/notifier.py): one statement now and then, not per completion.
    sql = [s["sql"] for s in q.captured_queries if '"tracker_webhook"' not in s["sql"]]
    assert not [s for s in sql if "tracker_trackedaction" in s or "workflows_timer" in s], sql
    assert not [s for s in sql if 'created_at" >=' in s], sql  # superseded_by
    assert len(sql) <= (11 if connection.vendor == "sqlite" else 12), sql
    ex.refresh_from_db()
    assert ex.state == "SUCCESS" and ex.output == {"got": {"v": 1}}


def test_an_earlier_attempt_of_a_task_is_gone_once_a_newer_one_runs(client, running):
    ex, action = running
    old = url_path(action)
    ActionExecution.objects.filter(id=action.id).update(state="ERROR")  # it failed; a retry runs it now
    newer = ActionExecution.objects.create(
        task_execution_id=action.task_execution_id,
        workflow_execution_id=ex.id,
        name=action.name,
        workflow_name=action.workflow_name,
        task_name=action.task_name,
        state="RUNNING",
        is_sync=False,
        input={},
        created_at=action.created_at + timedelta(seconds=1),
    )
    resp = put(client, old)
    assert resp.status_code == 410 and newer.id in resp.json()["faultstring"]
    assert ActionExecution.objects.get(id=newer.id).state == "RUNNING"


def test_each_with_items_async_item_completes_by_its_own_callback_and_a_repeat_is_200(client):
    services.save_workflows(
        "version: '2.0'\nwi:\n  tasks:\n    t:\n      with-items: i in [1, 2, 3]\n      action: std.async_noop\n"
    )
    ex = services.start_execution("wi")
    items = list(ActionExecution.objects.filter(workflow_execution=ex).order_by("created_at"))
    assert len(items) == 3
    for n, action in enumerate(items):
        assert put(client, url_path(action), output=n).status_code == 200
    assert put(client, url_path(items[0]), output=0).status_code == 200  # the same result again
    ex.refresh_from_db()
    assert ex.state == "SUCCESS"
