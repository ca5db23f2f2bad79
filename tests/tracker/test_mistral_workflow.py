"""``mistral.workflow`` in one process against a scripted Mistral v2 API:
its input checks, the start request, the poll mapping, the notification URL
and its bad input, hybrid's first-one-wins, the cancel request, and Gust's
own ``params.notify`` webhooks (Mistral's body and event names)."""

import http.server
import json
import threading
from datetime import timedelta

import pytest
from django.test import Client, TestCase
from django.utils import timezone

from tracker import remote
from tracker.models import Completion, TrackedAction
from tracker.queries import ActionInfo, QueryError
from tracker.runner import Tracker
from webhooks.models import WebhookDelivery
from workflows import services
from workflows.callbacks import callback_url, read_token
from workflows.errors import InvalidInput
from workflows.models import ActionExecution, TaskExecution

pytestmark = pytest.mark.django_db


class _Mistral(http.server.BaseHTTPRequestHandler):
    """POST /v2/executions starts "r1"; GET /v2/executions/r1 answers
    ``server.execution`` (or ``server.answer``: (status, bytes)); PUT records."""

    def _reply(self, status: int, body: bytes):
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _any(self):
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length)) if length else None
        self.server.requests.append(
            {"method": self.command, "path": self.path, "body": body, "headers": dict(self.headers)}
        )
        if self.server.answer is not None:
            return self._reply(*self.server.answer)
        if self.command == "POST":
            return self._reply(201, json.dumps({"id": "r1", "state": "RUNNING"}).encode())
        if self.command == "PUT":
            return self._reply(200, json.dumps({"id": "r1", "state": "CANCELLED"}).encode())
        return self._reply(200, json.dumps(self.server.execution).encode())

    do_GET = do_POST = do_PUT = _any

    def log_message(self, *args):
        pass


@pytest.fixture
def mistral():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Mistral)
    server.requests, server.answer = [], None
    server.execution = {"id": "r1", "state": "RUNNING", "state_info": None, "output": "{}"}
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    server.url = f"http://127.0.0.1:{server.server_address[1]}/v2"
    yield server
    server.shutdown()
    server.server_close()


def calling(url, tracking="callback", extra=""):
    services.save_workflows(
        f"""
version: '2.0'
caller:
  output: {{got: <% $.got %>}}
  tasks:
    go:
      action: mistral.workflow
      input:
        url: {url}
        workflow_name: remote_wf
        input: {{x: 1}}
        params: {{env: {{a: 1}}}}
        tracking: {tracking}
        query_interval: 1
        auth_token: secret-token
        {extra}
      publish: {{got: <% task().result %>}}
""",
        update=True,
    )
    with TestCase.captureOnCommitCallbacks(execute=True):  # the worker job runs inline after commit
        ex = services.start_execution("caller")
    return ex, ActionExecution.objects.get(workflow_execution_id=ex.id)


def notify(action, body, client=None):
    url = callback_url(action.id, action.attempt).split("://", 1)[1].split("/", 1)[1]
    return (client or Client()).post(f"/{url}/notification", data=json.dumps(body), content_type="text/plain")


# --- starting -----------------------------------------------------------------


def test_callback_mode_starts_the_remote_execution_with_a_webhook_for_the_three_final_events(mistral):
    ex, action = calling(mistral.url)
    (start,) = mistral.requests
    assert (start["method"], start["path"]) == ("POST", "/v2/executions")
    assert start["headers"]["X-Auth-Token"] == "secret-token"
    body = start["body"]
    assert body["workflow_name"] == "remote_wf" and json.loads(body["input"]) == {"x": 1}
    params = json.loads(body["params"])
    assert params["env"] == {"a": 1}
    (hook,) = params["notify"]
    assert hook["type"] == "webhook"
    assert hook["event_types"] == ["WORKFLOW_SUCCEEDED", "WORKFLOW_FAILED", "WORKFLOW_CANCELLED"]
    # The token is signed with the second it was made in, so compare what it says, not its bytes.
    prefix = callback_url(action.id, action.attempt).rsplit("/", 1)[0] + "/"
    assert hook["url"].startswith(prefix) and hook["url"].endswith("/notification")
    token = hook["url"][len(prefix) : -len("/notification")]
    assert read_token(token, max_age=60) == (str(action.id), action.attempt)
    action.refresh_from_db()
    assert action.state == "RUNNING" and action.runtime_context[remote.REMOTE_ID] == "r1"
    assert not TrackedAction.objects.exists()


def test_poll_mode_passes_no_notify_and_is_tracked(mistral):
    ex, action = calling(mistral.url, "poll")
    assert "notify" not in json.loads(mistral.requests[0]["body"]["params"])
    assert TrackedAction.objects.get(action=action).mode == "poll"


@pytest.mark.parametrize(
    ("bad", "error"),
    [
        ({"timeout": 0}, "parameter 'timeout' must be a number of seconds from 1 to 300, not 0"),
        ({"workflow_name": ""}, "parameter 'workflow_name' must be a workflow name (1-255 characters), not ''"),
        ({"url": "ftp://x/v2"}, "parameter 'url' must be the http(s) URL of a Mistral v2 API, not 'ftp://x/v2'"),
        ({"input": [1]}, "parameter 'input' must be an object, not list"),
        ({"params": {"notify": {"type": "webhook"}}}, "parameter 'params.notify' must be a list of publishers"),
    ],
)
def test_bad_input_fails_the_task_before_any_request(mistral, bad, error):
    inp = {"url": mistral.url, "workflow_name": "w", **bad}
    services.save_workflows(
        f"version: '2.0'\nbad:\n  tasks:\n    go:\n      action: mistral.workflow\n      input: {json.dumps(inp)}\n"
    )
    with TestCase.captureOnCommitCallbacks(execute=True):
        ex = services.start_execution("bad")
    ex.refresh_from_db()
    assert ex.state == "ERROR"
    assert error in TaskExecution.objects.get(workflow_execution=ex).state_info
    assert mistral.requests == []


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        (
            (404, b'{"faultstring": "Workflow not found [name=remote_wf]"}'),
            "refused to start workflow 'remote_wf': HTTP 404: Workflow not found [name=remote_wf]",
        ),
        (
            (500, b"<html>proxy error</html>"),
            "refused to start workflow 'remote_wf': HTTP 500: <html>proxy error</html>",
        ),
        (
            (201, b"<html>not an API</html>"),
            "answered HTTP 201 to start workflow 'remote_wf' with a body that is not JSON: '<html>not an API</html>'",
        ),
        ((201, b'{"state": "RUNNING"}'), "started workflow 'remote_wf' but its answer names no execution id"),
    ],
)
def test_a_bad_answer_to_the_start_fails_the_task_naming_the_remote(mistral, answer, error):
    mistral.answer = answer
    ex, action = calling(mistral.url)
    ex.refresh_from_db()
    assert ex.state == "ERROR"
    info = TaskExecution.objects.get(workflow_execution=ex).state_info
    assert error in info
    assert f"Remote Mistral at {mistral.url}" in info


def test_the_egress_policy_applies_to_the_remote(mistral, settings):
    settings.GUST = {**settings.GUST, "EGRESS": {**settings.GUST["EGRESS"], "ALLOWED_CIDRS": ()}}
    ex, _ = calling(mistral.url)
    ex.refresh_from_db()
    assert ex.state == "ERROR"
    assert "Refused to call" in TaskExecution.objects.get(workflow_execution=ex).state_info
    assert mistral.requests == []


# --- polling ------------------------------------------------------------------


def info(state=None, output="{}", state_info=None):
    return {"id": "r1", "state": state, "output": output, "state_info": state_info}


@pytest.mark.parametrize(
    ("execution", "state", "output"),
    [
        (info("SUCCESS", '{"doubled": 42}'), "SUCCESS", {"doubled": 42}),
        (
            info("ERROR", state_info="Failure caused by error in tasks: boom"),
            "ERROR",
            "Remote workflow execution r1 failed: Failure caused by error in tasks: boom",
        ),
        (info("CANCELLED", state_info="by hand"), "ERROR", "Remote workflow execution r1 was cancelled: by hand"),
    ],
)
def test_the_remote_state_maps_to_the_result(execution, state, output):
    result = remote.result_of(execution, "r1")
    assert (result.done, result.state, result.output) == (True, state, output)


@pytest.mark.parametrize("state", ["RUNNING", "IDLE", "PAUSED"])
def test_a_live_remote_state_keeps_waiting(state):
    assert not remote.result_of(info(state), "r1").done


def test_the_tracker_polls_the_remote_until_it_succeeds(mistral):
    ex, action = calling(mistral.url, "poll")
    now = [timezone.now()]
    tracker = Tracker(query_interval=0.01, clock=lambda: now[0])
    TrackedAction.objects.update(next_query_at=action.created_at, scheduled=True)
    assert tracker.run_once()["running"] == 1
    mistral.execution = info("SUCCESS", '{"doubled": 42}')
    now[0] += timedelta(seconds=1.1)  # the action's own query_interval: 1 s, on the tracker's schedule
    assert tracker.run_once()["completed"] == 1
    ex.refresh_from_db()
    assert ex.state == "SUCCESS" and ex.output == {"got": {"doubled": 42}}
    gets = [r for r in mistral.requests if r["method"] == "GET"]
    assert [r["path"] for r in gets] == ["/v2/executions/r1"] * 2
    assert gets[0]["headers"]["X-Auth-Token"] == "secret-token"


@pytest.mark.parametrize(
    ("answer", "final"),
    [
        ((404, b'{"faultstring": "not found"}'), "answered HTTP 404"),
        ((200, b"<html>"), "is not JSON"),
        ((503, b"busy"), None),
    ],
)
def test_a_bad_poll_answer_is_final_unless_asking_again_may_help(mistral, answer, final):
    ex, action = calling(mistral.url, "poll")
    mistral.answer = answer
    a = ActionInfo(action.id, action.name, action.input, {**action.runtime_context, "handed_over_at": "x"})
    if final is None:
        with pytest.raises(QueryError, match="HTTP 503"):
            remote.status(a)
    else:
        result = remote.status(a)
        assert result.done and result.state == "ERROR" and final in result.output


# --- the notification URL -------------------------------------------------------


def test_a_failed_notification_fails_the_task_with_the_remote_state_info(mistral):
    ex, action = calling(mistral.url)
    resp = notify(action, {"id": "r1", "event": "WORKFLOW_FAILED", "state": "ERROR", "state_info": "boom"})
    assert resp.status_code == 200 and resp.json()["applied"] is True
    ex.refresh_from_db()
    assert ex.state == "ERROR"
    assert "Remote workflow execution r1 failed: boom" in TaskExecution.objects.get(workflow_execution=ex).state_info
    assert Completion.objects.filter(action_id=action.id).values_list("mode", "door").get() == (
        "callback",
        "notification",
    )


def test_a_succeeded_notification_fetches_the_output_once(mistral):
    ex, action = calling(mistral.url)
    mistral.execution = info("SUCCESS", '{"doubled": 42}')
    resp = notify(action, {"id": "r1", "event": "WORKFLOW_SUCCEEDED", "state": "SUCCESS"})
    assert resp.status_code == 200 and resp.json()["applied"] is True
    ex.refresh_from_db()
    assert ex.output == {"got": {"doubled": 42}}
    assert [r["method"] for r in mistral.requests] == ["POST", "GET"]
    again = notify(action, {"id": "r1", "event": "WORKFLOW_SUCCEEDED", "state": "SUCCESS"})
    assert again.status_code == 200 and again.json()["applied"] is False


def test_when_the_output_can_not_be_fetched_the_tracker_polls_for_it(mistral):
    ex, action = calling(mistral.url)
    mistral.answer = (503, b"busy")
    resp = notify(action, {"id": "r1", "event": "WORKFLOW_SUCCEEDED", "state": "SUCCESS"})
    assert resp.status_code == 202
    assert TrackedAction.objects.get(action=action).mode == "poll"
    mistral.answer, mistral.execution = None, info("SUCCESS", '{"doubled": 42}')
    Tracker(query_interval=0.01).run_once()
    ex.refresh_from_db()
    assert ex.state == "SUCCESS"


def test_hybrid_the_first_result_wins_exactly_once(mistral):
    ex, action = calling(mistral.url, "hybrid", "grace: 0")
    mistral.execution = info("SUCCESS", '{"doubled": 42}')
    TrackedAction.objects.update(next_query_at=action.created_at, scheduled=True)
    assert Tracker(query_interval=0.01).run_once()["completed"] == 1
    late = notify(action, {"id": "r1", "event": "WORKFLOW_FAILED", "state": "ERROR", "state_info": "late"})
    assert late.status_code == 200 and late.json()["applied"] is False
    ex.refresh_from_db()
    assert ex.state == "SUCCESS" and ex.output == {"got": {"doubled": 42}}
    from tracker.models import Completion

    assert list(Completion.objects.values_list("mode", flat=True)) == ["hybrid-poll"]


@pytest.mark.parametrize(
    ("body", "status", "says"),
    [
        ("not json", 400, "The notification is not JSON"),
        ({"state": "SUCCESS"}, 400, "a JSON object with 'event' and 'id'"),
        ({"id": "other", "event": "WORKFLOW_FAILED"}, 400, "tracks remote execution r1"),
        ({"id": "r1", "event": "WORKFLOW_PAUSED"}, 200, "event WORKFLOW_PAUSED ignored"),
    ],
)
def test_bad_or_foreign_notifications_change_nothing(mistral, body, status, says):
    ex, action = calling(mistral.url)
    client = Client()
    url = callback_url(action.id, action.attempt).split("/", 3)[3]
    data = body if isinstance(body, str) else json.dumps(body)
    resp = client.post(f"/{url}/notification", data=data, content_type="application/json")
    assert resp.status_code == status
    assert says in resp.content.decode()
    action.refresh_from_db()
    assert action.state == "RUNNING"


def test_a_forged_notification_url_is_refused(mistral):
    resp = Client().post("/api/callbacks/forged/notification", data="{}", content_type="application/json")
    assert resp.status_code == 403


def test_the_notification_url_of_another_action_kind_is_refused(mistral):
    services.save_workflows("version: '2.0'\nw:\n  tasks:\n    t:\n      action: std.async_noop\n")
    ex = services.start_execution("w")
    action = ActionExecution.objects.get(workflow_execution_id=ex.id)
    resp = notify(action, {"id": "r1", "event": "WORKFLOW_FAILED"})
    assert resp.status_code == 400 and "not mistral.workflow" in resp.content.decode()


# --- cancelling ----------------------------------------------------------------


def test_cancelling_the_workflow_cancels_the_remote_execution(mistral, django_capture_on_commit_callbacks):
    ex, action = calling(mistral.url)
    with django_capture_on_commit_callbacks(execute=True):
        services.change_execution_state(ex.id, "CANCELLED")
    put = mistral.requests[-1]
    assert (put["method"], put["path"], put["body"]["state"]) == ("PUT", "/v2/executions/r1", "CANCELLED")
    assert put["body"]["state_info"] == f"Cancelled: its Gust action execution {action.id} ended CANCELLED"


def test_a_task_that_times_out_cancels_the_remote_execution(mistral, django_capture_on_commit_callbacks):
    ex, action = calling(mistral.url, extra="")
    ActionExecution.objects.filter(id=action.id).update(state="ERROR")  # as the timeout policy ends it
    assert remote.cancel_remote(action.id) is True
    assert [r["method"] for r in mistral.requests] == ["POST", "GET", "PUT"]


def test_a_failure_that_came_from_the_remote_cancels_nothing(mistral, django_capture_on_commit_callbacks):
    ex, action = calling(mistral.url)
    mistral.execution = info("ERROR", state_info="boom")
    with django_capture_on_commit_callbacks(execute=True):
        notify(action, {"id": "r1", "event": "WORKFLOW_FAILED", "state": "ERROR", "state_info": "boom"})
    assert [r["method"] for r in mistral.requests] == ["POST", "GET"]  # asked, and left alone


def test_a_remote_that_refuses_the_cancel_is_logged_not_raised(mistral, caplog):
    ex, action = calling(mistral.url)
    mistral.answer = (400, b'{"faultstring": "already SUCCESS"}')
    assert remote.cancel_remote(action.id) is False
    assert "already SUCCESS" in caplog.text


# --- Gust's own params.notify ----------------------------------------------------


@pytest.fixture
def hook_server():
    class Hook(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            self.server.requests.append({"headers": dict(self.headers), "body": json.loads(body)})
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    server.requests = []
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    server.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    yield server
    server.shutdown()
    server.server_close()


def test_an_execution_with_params_notify_sends_mistrals_notifications(hook_server, django_capture_on_commit_callbacks):
    services.save_workflows("version: '2.0'\nechoing:\n  tasks:\n    t:\n      action: std.echo output=1\n")
    params = {
        "notify": [
            {
                "type": "webhook",
                "url": hook_server.url,
                "headers": {"X-Auth": "k"},
                "event_types": ["WORKFLOW_SUCCEEDED", "WORKFLOW_FAILED"],
            },
            {"type": "noop"},
        ]
    }
    with django_capture_on_commit_callbacks(execute=True):
        ex = services.start_execution("echoing", params=params)
    (sent,) = hook_server.requests  # WORKFLOW_LAUNCHED is not among the event_types
    ex.refresh_from_db()
    assert sent["headers"]["X-Auth"] == "k"
    assert sent["body"] == {
        "id": ex.id,
        "name": "echoing",
        "workflow_name": "echoing",
        "workflow_namespace": "",
        "workflow_id": ex.workflow_id,
        "state": "SUCCESS",
        "state_info": None,
        "project_id": ex.project_id,
        "task_execution_id": None,
        "root_execution_id": None,
        "created_at": ex.created_at.strftime("%Y-%m-%d %H:%M:%S"),
        "updated_at": ex.updated_at.strftime("%Y-%m-%d %H:%M:%S"),
        "event": "WORKFLOW_SUCCEEDED",
    }
    row = WebhookDelivery.objects.get()
    assert (row.webhook, row.state, row.url) == (None, "DELIVERED", hook_server.url)


@pytest.mark.parametrize(
    ("notify_value", "says"),
    [
        ({"type": "webhook"}, "params.notify must be a list of publishers, not dict"),
        ([{"type": "email"}], "params.notify[0].type must be webhook | noop, not 'email'"),
        ([{"type": "webhook", "url": "ftp://x"}], "params.notify[0].url must be an http(s) URL"),
        ([{"type": "webhook", "url": "http://x", "event_types": ["TASK_DONE"]}], "params.notify[0].event_types"),
        ([{"type": "webhook", "url": "http://x", "headers": {"a": 1}}], "params.notify[0].headers"),
    ],
)
def test_a_bad_params_notify_is_refused_at_start_and_nothing_is_stored(notify_value, says):
    services.save_workflows("version: '2.0'\nechoing:\n  tasks:\n    t:\n      action: std.echo output=1\n")
    with pytest.raises(InvalidInput, match=r"Invalid params.notify: ") as raised:
        services.start_execution("echoing", params={"notify": notify_value})
    assert says in raised.value.message
    resp = Client().post(
        "/v2/executions",
        data=json.dumps({"workflow_name": "echoing", "params": {"notify": notify_value}}),
        content_type="application/json",
    )
    assert resp.status_code == 400 and says in resp.json()["faultstring"]
    from workflows.models import WorkflowExecution

    assert not WorkflowExecution.objects.exists()


def test_fetch_errors_that_may_pass_are_query_errors():
    with pytest.raises(QueryError):
        remote.fetch({"url": "http://127.0.0.1:9/v2", "timeout": 1}, "r1")


def test_a_params_notify_url_that_does_not_answer_is_retried_with_backoff(django_capture_on_commit_callbacks):
    from bench.procs import free_port

    services.save_workflows("version: '2.0'\nechoing:\n  tasks:\n    t:\n      action: std.echo output=1\n")
    url = f"http://127.0.0.1:{free_port()}/hook"
    with django_capture_on_commit_callbacks(execute=True):
        services.start_execution("echoing", params={"notify": [{"type": "webhook", "url": url}]})
    rows = list(WebhookDelivery.objects.order_by("id"))
    assert [r.event for r in rows] == ["WORKFLOW_LAUNCHED", "WORKFLOW_SUCCEEDED"]
    assert all(r.state == "PENDING" and r.attempts == 1 and "ConnectionError" in r.last_error for r in rows)
    assert all(r.next_attempt_at > r.created_at for r in rows)
