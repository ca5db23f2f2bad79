"""The webhook notifier against a real database and a real HTTP endpoint:
events are written with the change, sent after commit, signed, filtered,
retried with backoff and given up on, and never sent twice."""

import hashlib
import hmac
import http.server
import json
import logging
import socket
import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from core.engine import TraceEvent
from webhooks import notifier
from webhooks.models import Webhook, WebhookDelivery
from workflows import services

pytestmark = pytest.mark.django_db

CHAIN = """
version: '2.0'
chain:
  tasks:
    one:
      action: std.echo output=1
      on-success: [two]
    two:
      action: std.noop
"""

FAILING = """
version: '2.0'
failing:
  tasks:
    boom:
      action: std.fail
"""

WAITING = """
version: '2.0'
waiting:
  tasks:
    outside:
      action: std.async_noop
"""


class _Hook(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        server = self.server
        with server.lock:
            server.requests.append({"path": self.path, "headers": dict(self.headers), "body": body})
            failing = server.fail_times > 0
            server.fail_times -= 1
        status = 500 if failing else 204
        self.send_response(status)
        if failing:
            self.send_header("Content-Length", "12")
            self.end_headers()
            self.wfile.write(b"server broke")
        else:
            self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def webhook_server():
    """A real HTTP endpoint on 127.0.0.1 that records every POST; set
    ``fail_times`` to make the next N answers 500."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hook)
    server.requests, server.fail_times, server.lock = [], 0, threading.Lock()
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    server.url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    server.events = lambda: [r["headers"]["Gust-Event"] for r in server.requests]
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def dead_url():
    """A URL nobody listens on (connection refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"


def only_delivery(**filters) -> WebhookDelivery:
    return WebhookDelivery.objects.get(**filters)


def test_trace_events_reach_the_webhook_only_after_commit(webhook_server, caplog, django_capture_on_commit_callbacks):
    hook = Webhook.objects.create(url=webhook_server.url)
    services.save_workflows(CHAIN)
    caplog.set_level(logging.INFO, logger="gust")

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        ex = services.start_execution("chain")
    # The outbox rows are part of the change; nothing left the process yet.
    kinds = [
        "WORKFLOW_LAUNCHED",
        "TASK_RUNNING",
        "TASK_SUCCEEDED",
        "TASK_RUNNING",
        "TASK_SUCCEEDED",
        "WORKFLOW_SUCCEEDED",
    ]
    rows = list(WebhookDelivery.objects.order_by("id"))
    assert [r.event for r in rows] == kinds
    assert {r.state for r in rows} == {"PENDING"} and {r.execution_id for r in rows} == {ex.id}
    assert webhook_server.requests == []

    for callback in callbacks:
        callback()

    assert webhook_server.events() == kinds
    first = webhook_server.requests[0]
    assert first["headers"]["Content-Type"] == "application/json"
    assert first["headers"]["Gust-Delivery"] == str(rows[0].id)
    assert "Gust-Signature" not in first["headers"]
    succeeded = json.loads(webhook_server.requests[2]["body"])
    assert succeeded == {
        "event": "TASK_SUCCEEDED",
        "execution_id": ex.id,
        "workflow_name": "chain",
        "task_id": succeeded["task_id"],
        "task_name": "one",
        "state_info": None,
        "at": succeeded["at"],
    }
    assert datetime.fromisoformat(succeeded["at"]) <= timezone.now()
    for row in WebhookDelivery.objects.all():
        assert (row.state, row.attempts, row.last_status, row.webhook_id) == ("DELIVERED", 1, 204, hook.id)
        assert row.delivered_at is not None

    last = rows[-1]
    notifier_lines = [r.getMessage() for r in caplog.records if r.name == "gust.notifier"]
    assert (
        f"[{ex.id}] The workflow event WORKFLOW_SUCCEEDED for {ex.id} will be published to "
        f"{webhook_server.url} (delivery {last.id})" in notifier_lines
    )
    assert (
        f"[{ex.id}] The workflow event WORKFLOW_SUCCEEDED for {ex.id} is published to "
        f"{webhook_server.url} (delivery {last.id})" in notifier_lines
    )
    assert (
        f"[{ex.id}] The task event TASK_SUCCEEDED for {succeeded['task_id']} is published to "
        f"{webhook_server.url} (delivery {rows[2].id})" in notifier_lines
    )
    # The trace log lines stay.
    assert any(r.name == "gust.trace" and "WORKFLOW_SUCCEEDED" in r.getMessage() for r in caplog.records)


def test_each_webhook_gets_only_the_events_it_subscribes_to(webhook_server, django_capture_on_commit_callbacks):
    done = Webhook.objects.create(url=webhook_server.url + "/done", events=["WORKFLOW_SUCCEEDED", "WORKFLOW_FAILED"])
    failures = Webhook.objects.create(url=webhook_server.url + "/failures", events=["TASK_FAILED"])
    Webhook.objects.create(url=webhook_server.url + "/off", active=False)
    services.save_workflows(CHAIN)
    services.save_workflows(FAILING)

    with django_capture_on_commit_callbacks(execute=True):
        ok = services.start_execution("chain")
        bad = services.start_execution("failing")

    got = sorted(
        (r["path"], r["headers"]["Gust-Event"], json.loads(r["body"])["execution_id"]) for r in webhook_server.requests
    )
    assert got == [
        ("/hook/done", "WORKFLOW_FAILED", bad.id),
        ("/hook/done", "WORKFLOW_SUCCEEDED", ok.id),
        ("/hook/failures", "TASK_FAILED", bad.id),
    ]
    assert WebhookDelivery.objects.filter(webhook=done).count() == 2
    assert WebhookDelivery.objects.filter(webhook=failures).get().payload["state_info"]
    assert WebhookDelivery.objects.count() == 3  # nothing for the inactive one


def test_the_signature_is_an_hmac_sha256_of_the_exact_body(webhook_server, django_capture_on_commit_callbacks):
    Webhook.objects.create(url=webhook_server.url, events=["WORKFLOW_SUCCEEDED"], secret="s3cret")
    services.save_workflows(CHAIN)
    with django_capture_on_commit_callbacks(execute=True):
        services.start_execution("chain")

    (request,) = webhook_server.requests
    expected = hmac.new(b"s3cret", request["body"], hashlib.sha256).hexdigest()
    assert request["headers"]["Gust-Signature"] == f"sha256={expected}"
    assert hmac.compare_digest(
        request["headers"]["Gust-Signature"], "sha256=" + notifier.sign("s3cret", request["body"])
    )
    assert request["headers"]["Gust-Event"] == "WORKFLOW_SUCCEEDED"


def test_a_failing_endpoint_is_retried_with_backoff_until_it_answers(
    webhook_server, caplog, django_capture_on_commit_callbacks
):
    Webhook.objects.create(url=webhook_server.url, events=["WORKFLOW_SUCCEEDED"])
    services.save_workflows(CHAIN)
    webhook_server.fail_times = 2
    caplog.set_level(logging.INFO, logger="gust.notifier")

    before = timezone.now()
    with django_capture_on_commit_callbacks(execute=True):
        services.start_execution("chain")
    row = only_delivery()
    assert (row.state, row.attempts, row.last_status, row.last_error) == ("PENDING", 1, 500, "HTTP 500: server broke")
    assert row.next_attempt_at >= before + timedelta(seconds=2)

    # Not due yet: nothing is sent.
    assert notifier.retry_due(now=row.next_attempt_at - timedelta(seconds=1)) == 0
    assert len(webhook_server.requests) == 1

    second_try = row.next_attempt_at
    assert notifier.retry_due(now=second_try) == 1
    row.refresh_from_db()
    assert (row.state, row.attempts, row.last_status) == ("PENDING", 2, 500)
    assert row.next_attempt_at == second_try + timedelta(seconds=4)  # 2 ** attempts

    assert notifier.retry_due(now=row.next_attempt_at) == 1
    row.refresh_from_db()
    assert (row.state, row.attempts, row.last_status, row.last_error) == ("DELIVERED", 3, 204, None)
    assert [r["headers"]["Gust-Delivery"] for r in webhook_server.requests] == [str(row.id)] * 3

    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert "attempt 1 of 8, next in 2s): HTTP 500: server broke" in warnings[0]
    assert "attempt 2 of 8, next in 4s)" in warnings[1]


def test_a_dead_endpoint_ends_failed_after_the_max_attempts(
    dead_url, settings, caplog, django_capture_on_commit_callbacks
):
    settings.WEBHOOKS = {"MAX_ATTEMPTS": 3}
    Webhook.objects.create(url=dead_url, events=["WORKFLOW_LAUNCHED", "WORKFLOW_SUCCEEDED"])
    services.save_workflows(CHAIN)
    caplog.set_level(logging.INFO, logger="gust.notifier")
    with django_capture_on_commit_callbacks(execute=True):
        services.start_execution("chain")

    launched, succeeded = WebhookDelivery.objects.order_by("id")
    # One refused connection counts for the whole batch: no second timeout.
    assert launched.last_error.startswith("ConnectionError")
    assert succeeded.last_error.startswith("not sent, endpoint unreachable: ConnectionError")
    assert launched.attempts == succeeded.attempts == 1

    for _ in range(10):  # a tracker calling retry_due whenever the next row is due
        pending = WebhookDelivery.objects.filter(state="PENDING").order_by("next_attempt_at").first()
        if pending is None:
            break
        notifier.retry_due(now=pending.next_attempt_at)
    for row in WebhookDelivery.objects.all():
        assert (row.state, row.attempts, row.last_status) == ("FAILED", 3, None)
        assert row.last_error.startswith("ConnectionError") or row.last_error.startswith("not sent")
    assert notifier.retry_due(now=timezone.now() + timedelta(days=1)) == 0
    assert sum("giving up" in r.getMessage() for r in caplog.records if r.levelno == logging.ERROR) == 2


def test_a_rolled_back_change_leaves_no_delivery_rows(webhook_server, django_capture_on_commit_callbacks):
    Webhook.objects.create(url=webhook_server.url)
    services.save_workflows(CHAIN)
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with pytest.raises(RuntimeError):
            with transaction.atomic():
                services.start_execution("chain")
                assert WebhookDelivery.objects.count() == 6
                raise RuntimeError("the caller's transaction fails after the change")
    assert WebhookDelivery.objects.count() == 0
    assert callbacks == [] and webhook_server.requests == []


def test_publish_sends_an_event_of_another_app(webhook_server, caplog, django_capture_on_commit_callbacks):
    caplog.set_level(logging.INFO, logger="gust.notifier")
    Webhook.objects.create(url=webhook_server.url, events=["APPROVAL_CREATED"])
    services.save_workflows(WAITING)
    with django_capture_on_commit_callbacks(execute=True):
        ex = services.start_execution("waiting")
    assert webhook_server.requests == []  # no subscription to trace events

    due = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        with transaction.atomic():
            (delivery_id,) = notifier.publish("APPROVAL_CREATED", {"approval_id": 7, "due": due}, execution_id=ex.id)
        assert webhook_server.requests == []
    for callback in callbacks:
        callback()

    (request,) = webhook_server.requests
    body = json.loads(request["body"])
    assert body == {
        "event": "APPROVAL_CREATED",
        "execution_id": ex.id,
        "approval_id": 7,
        "due": "2030-01-02T03:04:05Z",
        "at": body["at"],
    }
    assert request["headers"]["Gust-Delivery"] == str(delivery_id)
    row = only_delivery(id=delivery_id)
    assert (row.state, row.event, row.execution_id) == ("DELIVERED", "APPROVAL_CREATED", ex.id)
    assert f"[{ex.id}] The event APPROVAL_CREATED for 7 is published to {webhook_server.url} (delivery {row.id})" in [
        r.getMessage() for r in caplog.records
    ]
    assert notifier.publish("APPROVAL_DECIDED", {"approval_id": 7}) == []  # nobody subscribes


@pytest.mark.django_db(transaction=True)
def test_publish_outside_a_transaction_delivers_at_once(webhook_server):
    Webhook.objects.create(url=webhook_server.url)
    assert not connection.in_atomic_block
    (delivery_id,) = notifier.publish("APPROVAL_EXPIRED", {"approval_id": 9})
    assert webhook_server.events() == ["APPROVAL_EXPIRED"]
    assert only_delivery(id=delivery_id).state == "DELIVERED"


def test_retry_due_takes_only_due_pending_rows_earliest_first(webhook_server):
    hook = Webhook.objects.create(url=webhook_server.url)
    now = timezone.now()

    def row(state, due_in, event):
        return WebhookDelivery.objects.create(
            webhook=hook,
            event=event,
            payload={"event": event},
            state=state,
            next_attempt_at=now + timedelta(seconds=due_in),
        )

    later = row("PENDING", -10, "LATER_DUE")
    first = row("PENDING", -20, "FIRST_DUE")
    row("PENDING", -5, "THIRD_DUE")
    future = row("PENDING", 60, "NOT_DUE")
    row("FAILED", -30, "GAVE_UP")
    row("DELIVERED", -30, "DONE")

    assert notifier.retry_due(now=now, limit=2) == 2
    assert sorted(webhook_server.events()) == ["FIRST_DUE", "LATER_DUE"]
    assert {r.id for r in WebhookDelivery.objects.filter(state="DELIVERED", delivered_at=now)} == {first.id, later.id}
    assert notifier.retry_due(now=now) == 1
    assert notifier.retry_due(now=now) == 0
    future.refresh_from_db()
    assert (future.state, future.attempts) == ("PENDING", 0)


def test_a_leased_or_finished_row_is_not_sent_again(webhook_server):
    hook = Webhook.objects.create(url=webhook_server.url)
    now = timezone.now()
    leased = WebhookDelivery.objects.create(
        webhook=hook, event="E", payload={}, next_attempt_at=now + timedelta(minutes=5)
    )
    fresh = WebhookDelivery.objects.create(webhook=hook, event="E", payload={}, next_attempt_at=now)
    assert notifier.deliver([leased.id, fresh.id]) == 1
    assert notifier.deliver([leased.id, fresh.id]) == 0
    assert [r["headers"]["Gust-Delivery"] for r in webhook_server.requests] == [str(fresh.id)]


@pytest.mark.django_db(transaction=True)
def test_concurrent_workers_deliver_each_row_exactly_once(webhook_server):
    hook = Webhook.objects.create(url=webhook_server.url)
    ids = [
        d.id
        for d in WebhookDelivery.objects.bulk_create(
            WebhookDelivery(webhook=hook, event="E", payload={"n": n}, next_attempt_at=timezone.now())
            for n in range(40)
        )
    ]
    start = threading.Barrier(4)
    errors = []

    def worker():
        try:
            start.wait()
            notifier.deliver(ids)
        except Exception as exc:  # surfaced below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    sent = sorted(int(r["headers"]["Gust-Delivery"]) for r in webhook_server.requests)
    assert sent == sorted(ids)
    assert WebhookDelivery.objects.filter(state="DELIVERED", attempts=1).count() == 40


def test_no_webhook_costs_no_query_and_a_new_one_counts_at_once(webhook_server, django_capture_on_commit_callbacks):
    events = [TraceEvent("WORKFLOW_LAUNCHED", "ex-1")]
    assert notifier.record_trace("wf", events) == []  # learns "no webhook"
    with CaptureQueriesContext(connection) as queries:
        assert notifier.record_trace("wf", events) == []
    assert len(queries) == 0

    Webhook.objects.create(url=webhook_server.url)
    with django_capture_on_commit_callbacks(execute=True):
        (delivery_id,) = notifier.record_trace("wf", events)
    assert only_delivery(id=delivery_id).state == "DELIVERED"


def test_an_inactive_webhook_is_not_called_for_rows_it_already_has(webhook_server):
    hook = Webhook.objects.create(url=webhook_server.url, active=False)
    row = WebhookDelivery.objects.create(webhook=hook, event="E", payload={}, next_attempt_at=timezone.now())
    assert notifier.deliver([row.id]) == 1
    row.refresh_from_db()
    assert (row.state, row.last_error) == ("FAILED", "webhook is inactive")
    assert webhook_server.requests == []

    hook.active = True
    hook.save()
    assert notifier.requeue([row.id]) == 1
    row.refresh_from_db()
    assert (row.state, row.attempts) == ("PENDING", 0)


def test_the_admin_lists_the_log_read_only_and_sends_failed_rows_again(
    admin_client, webhook_server, django_capture_on_commit_callbacks
):
    hook = Webhook.objects.create(url=webhook_server.url)
    failed = WebhookDelivery.objects.create(
        webhook=hook,
        event="E",
        payload={},
        state="FAILED",
        attempts=8,
        last_error="HTTP 500",
        next_attempt_at=timezone.now(),
    )
    for page in (
        "webhooks/webhook",
        "webhooks/webhookdelivery",
        "tracker/trackedaction",
        "tracker/callbackinbox",
        "tracker/trackerprocess",
    ):
        assert admin_client.get(f"/admin/{page}/").status_code == 200, page
    assert admin_client.get("/admin/webhooks/webhookdelivery/?state__exact=FAILED").status_code == 200
    assert admin_client.get("/admin/webhooks/webhookdelivery/add/").status_code == 403
    page = admin_client.get(f"/admin/webhooks/webhookdelivery/{failed.id}/change/")
    assert page.status_code == 200 and b"HTTP 500" in page.content and b'name="_save"' not in page.content

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            "/admin/webhooks/webhookdelivery/", {"action": "send_again", "_selected_action": [failed.id]}
        )
    assert response.status_code == 302
    failed.refresh_from_db()
    assert (failed.state, failed.attempts, failed.last_status) == ("DELIVERED", 1, 204)
    assert webhook_server.events() == ["E"]
