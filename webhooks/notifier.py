"""The webhook notifier: trace events (and events other apps publish) go to
the configured webhooks after commit, with retries and a delivery log.

Outbox. ``record_trace`` (called by the ``execution_events`` receiver) and
``publish`` write one ``WebhookDelivery`` row (PENDING, due now) per
subscribed webhook and event *inside the caller's transaction*, so the rows
commit or roll back with the change, and an event whose process dies right
after commit is still in the table. ``transaction.on_commit`` then enqueues
one django-q2 job per batch of row ids.

Delivery. ``deliver`` (the job) and ``retry_due`` (called periodically by
the tracker process) claim due PENDING rows in a short transaction
(``SELECT ... FOR UPDATE SKIP LOCKED`` on PostgreSQL; on SQLite the IMMEDIATE
transaction serializes claimers) by pushing ``next_attempt_at`` forward as a
lease, then POST outside any transaction and record the outcome. A worker
that dies mid-batch leaves its rows PENDING; they are due again when the
lease ends. Delivery is therefore at-least-once: receivers deduplicate on
the ``Gust-Delivery`` header. Each webhook receives a batch in event order;
retries may arrive after later events (the payload carries ``at``).

A URL the egress policy (``workflows.egress``) refuses is not retried: its
rows are FAILED at once with the reason.

Settings, read at call time from ``settings.WEBHOOKS`` (webhooks.conf):
MAX_ATTEMPTS (8), TIMEOUT (10 s per request), CACHE_SECONDS (5 s: how long
"no active webhook" is remembered).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

import requests
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from core.engine import TraceEvent
from webhooks import conf
from webhooks.models import Webhook, WebhookDelivery
from workflows import egress, notify, queue
from workflows.rows import ts

if TYPE_CHECKING:
    from workflows.models import WorkflowExecution

logger = logging.getLogger("gust.notifier")

PENDING, DELIVERED, FAILED = "PENDING", "DELIVERED", "FAILED"
BATCH_SIZE = 50  # row ids per worker job
MAX_BACKOFF = 3600  # seconds
LEASE_MARGIN = 60  # seconds a claim outlives the requests it covers


# --- subscriptions -----------------------------------------------------------

# The engine sends events for every state change, and most installations have
# no webhook: remember "none" briefly so that case costs no query. A non-empty
# list is always read fresh, so a row never points at a deleted webhook
# because of a stale cache. Webhook saves and deletes in this process forget
# at once; other processes notice a new webhook within NOTIFIER_CACHE_SECONDS.
_none_until = 0.0


def forget_webhooks() -> None:
    """Drop the "no active webhook" memo (called when a Webhook is saved or deleted)."""
    global _none_until
    _none_until = 0.0


def _active_webhooks() -> list[tuple[int, frozenset[str]]]:
    """(id, subscribed kinds; empty = all) of every active webhook."""
    global _none_until
    if time.monotonic() < _none_until:
        return []
    hooks = [(pk, _kinds(events)) for pk, events in Webhook.objects.filter(active=True).values_list("id", "events")]
    if not hooks:
        _none_until = time.monotonic() + float(conf.get("CACHE_SECONDS"))
    return hooks


def _kinds(events: Any) -> frozenset[str]:
    if isinstance(events, str):  # tolerate "TASK_FAILED" typed without brackets
        return frozenset([events])
    return frozenset(events or ())


# --- the outbox --------------------------------------------------------------


def record_trace(workflow_name: str, events: list[TraceEvent]) -> list[int]:
    """Outbox rows for engine trace events (``core.engine.TraceEvent``).

    Must run inside the transaction of the change; returns the new row ids.
    """
    if not events:
        return []
    hooks = _active_webhooks()
    if not hooks:
        return []
    items = [
        (
            e.kind,
            e.execution_id,
            {
                "event": e.kind,
                "execution_id": e.execution_id,
                "workflow_name": workflow_name,
                "task_id": e.task_id,
                "task_name": e.task_name,
                "state_info": e.state_info,
            },
        )
        for e in events
    ]
    return _write_outbox(hooks, items)


def record_notify(execution: WorkflowExecution, events: list[TraceEvent]) -> list[int]:
    """Outbox rows for an execution's own ``params.notify`` publishers
    (``workflows.notify``): one per webhook publisher and workflow event it
    takes, with Mistral's body. Must run inside the transaction of the change."""
    publishers = (execution.params or {}).get("notify")
    if not publishers:
        return []
    rows = []
    for e in events:
        if not e.kind.startswith("WORKFLOW_") or e.execution_id != execution.id:
            continue
        body = None
        for pub in notify.publishers_for(publishers, e.kind):
            body = body or mistral_notification(execution, e.kind)
            rows.append(
                WebhookDelivery(
                    url=pub["url"],
                    headers=pub.get("headers") or {},
                    event=e.kind,
                    execution_id=execution.id,
                    payload=body,
                    state=PENDING,
                    next_attempt_at=timezone.now(),
                )
            )
    if not rows:
        return []
    WebhookDelivery.objects.bulk_create(rows)
    ids = [row.id for row in rows]
    transaction.on_commit(lambda: enqueue(ids))
    return ids


def mistral_notification(ex: WorkflowExecution, event: str) -> dict:
    """Mistral 23's webhook body for a workflow event (engine/workflows.py ``_notify``)."""
    return {
        "id": ex.id,
        "name": ex.workflow_name,
        "workflow_name": ex.workflow_name,
        "workflow_namespace": ex.workflow_namespace,
        "workflow_id": ex.workflow_id,
        "state": ex.state,
        "state_info": ex.state_info,
        "project_id": ex.project_id,
        "task_execution_id": ex.task_execution_id,
        "root_execution_id": ex.root_execution_id,
        "created_at": ts(ex.created_at),
        "updated_at": ts(ex.updated_at),
        "event": event,
    }


def publish(kind: str, payload: dict, execution_id: str | None = None) -> list[int]:
    """Send an event of another app (e.g. APPROVAL_CREATED) to the webhooks
    subscribed to ``kind``, after commit.

    Inside an atomic block the rows join that transaction (and vanish if it
    rolls back); outside one they are committed at once. The body is
    ``{"event": kind, "execution_id": ..., **payload, "at": ...}``; ``payload``
    may hold anything DjangoJSONEncoder handles. Returns the new row ids.
    Raises ValueError for an empty or over-long kind.
    """
    if not kind or len(kind) > WebhookDelivery._meta.get_field("event").max_length:
        raise ValueError(f"invalid event kind {kind!r}")
    body = {"event": kind, "execution_id": execution_id, **payload}
    body["event"] = kind
    body = json.loads(json.dumps(body, cls=DjangoJSONEncoder))  # what the JSON column can store
    hooks = _active_webhooks()
    if not hooks:
        return []
    with transaction.atomic():
        return _write_outbox(hooks, [(kind, execution_id, body)])


def _write_outbox(hooks: list[tuple[int, frozenset[str]]], items: Iterable[tuple[str, str | None, dict]]) -> list[int]:
    now = timezone.now()
    at = now.isoformat()
    rows = [
        WebhookDelivery(
            webhook_id=hook_id,
            event=kind,
            execution_id=execution_id,
            payload={**body, "at": body.get("at") or at},
            state=PENDING,
            next_attempt_at=now,
        )
        for kind, execution_id, body in items
        for hook_id, kinds in hooks
        if not kinds or kind in kinds
    ]
    if not rows:
        return []
    WebhookDelivery.objects.bulk_create(rows)  # ids come back (RETURNING) on SQLite and PostgreSQL
    ids = [row.id for row in rows]
    transaction.on_commit(lambda: enqueue(ids))
    return ids


def enqueue(delivery_ids: list[int]) -> None:
    """Hand the rows to django-q2 workers, ``BATCH_SIZE`` ids per job.

    Never raises: this runs after the change committed, and rows that could
    not be enqueued stay PENDING and due, so ``retry_due`` sends them.
    """
    if not delivery_ids:
        return
    batches = [(delivery_ids[i : i + BATCH_SIZE],) for i in range(0, len(delivery_ids), BATCH_SIZE)]
    try:
        queue.enqueue("webhooks.notifier.deliver", batches, "notify")
    except Exception:
        logger.exception("deliveries %s..%s not enqueued; retry_due will send them", delivery_ids[0], delivery_ids[-1])


# --- delivery ----------------------------------------------------------------


def deliver(delivery_ids: Iterable[int]) -> int:
    """The worker job: POST each of these rows that is PENDING and due.

    Rows another worker holds (leased, or locked on PostgreSQL) or that are
    already DELIVERED/FAILED are skipped. Runs the HTTP requests outside any
    transaction. Returns how many rows were attempted.
    """
    rows = _claim(WebhookDelivery.objects.filter(id__in=list(delivery_ids)), timezone.now(), None)
    _send(rows, None)
    return len(rows)


def retry_due(now: datetime | None = None, limit: int = 100) -> int:
    """Deliver up to ``limit`` PENDING rows whose ``next_attempt_at`` <= now
    (earliest first), in the calling thread; returns how many were attempted.

    ``now`` (default: the current time) is also the clock for the lease,
    ``delivered_at`` and the next backoff, so a test can pass a fixed time.
    """
    at = now or timezone.now()
    if not WebhookDelivery.objects.filter(state=PENDING, next_attempt_at__lte=at).exists():
        return 0  # a read first: no write transaction (on SQLite, a turn on the one writer) every 2 s for nothing
    rows = _claim(WebhookDelivery.objects.all(), at, limit)
    _send(rows, now)
    return len(rows)


def requeue(delivery_ids: Iterable[int]) -> int:
    """Operator's "send again" for FAILED rows: PENDING with fresh attempts,
    due now, enqueued after commit. PENDING rows are left alone (one may be
    leased by a worker right now). Returns how many rows changed."""
    with transaction.atomic():
        failed = WebhookDelivery.objects.select_for_update().filter(id__in=list(delivery_ids), state=FAILED)
        ids = list(failed.values_list("id", flat=True))
        WebhookDelivery.objects.filter(id__in=ids).update(state=PENDING, attempts=0, next_attempt_at=timezone.now())
        if ids:
            transaction.on_commit(lambda: enqueue(ids))
    return len(ids)


def _claim(queryset: QuerySet[WebhookDelivery], now: datetime, limit: int | None) -> list[WebhookDelivery]:
    """Lease due PENDING rows in one short transaction and return them in id
    order. ``select_for_update`` is a no-op on SQLite, where the IMMEDIATE
    transaction already holds the write lock from its first statement."""
    timeout = float(conf.get("TIMEOUT"))
    with transaction.atomic():
        due = (
            queryset.filter(state=PENDING, next_attempt_at__lte=now)
            .select_related("webhook")
            .select_for_update(skip_locked=True, of=("self",))
            .order_by("next_attempt_at", "id")
        )
        rows = list(due[:limit] if limit is not None else due)
        if rows:
            lease_until = now + timedelta(seconds=LEASE_MARGIN + timeout * len(rows))
            WebhookDelivery.objects.filter(id__in=[r.id for r in rows]).update(next_attempt_at=lease_until)
    return sorted(rows, key=lambda r: r.id)


def _send(rows: list[WebhookDelivery], fixed_now: datetime | None) -> None:
    max_attempts = int(conf.get("MAX_ATTEMPTS"))
    timeout = float(conf.get("TIMEOUT"))
    unreachable: dict[object, str] = {}  # webhook id (or URL) -> why, for the rest of this batch
    refused: dict[object, str] = {}  # webhook id (or URL) -> the egress policy's reason
    for row in rows:
        hook = row.webhook
        key = hook.id if hook else row.url
        status: int | None
        error: str | None
        if hook is not None and not hook.active:
            status, error, give_up = None, "webhook is inactive", True
        elif key in refused:
            status, error, give_up = None, refused[key], True
        elif key in unreachable:
            # A dead endpoint would cost a full timeout per row: count the
            # attempt against every row of this batch instead.
            status, error, give_up = None, f"not sent, endpoint unreachable: {unreachable[key]}", False
        else:
            logger.info("%s will be published to %s (delivery %s)", _line(row), _shown(_url(row)), row.id)
            give_up = False
            try:
                status, error = _post(hook, row, timeout)
            except egress.EgressRefused as exc:
                # A policy decision, not a network failure: retrying can not help.
                status, error, give_up = None, str(exc), True
                refused[key] = error
            if status is None and error is not None and not give_up:  # no answer; error says why
                unreachable[key] = error
        _record(row, status, error, give_up, max_attempts, fixed_now or timezone.now())


def _url(row: WebhookDelivery) -> str:
    return row.webhook.url if row.webhook else row.url or ""


def _post(hook: Webhook | None, row: WebhookDelivery, timeout: float) -> tuple[int | None, str | None]:
    """(HTTP status or None, error or None) of one POST (to a Webhook, or to
    the row's own params.notify URL with its headers). Raises only
    EgressRefused, when the egress policy refuses the URL (nothing is sent)."""
    body = json.dumps(row.payload, separators=(",", ":")).encode()
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "Gust-Notifier",
        "Gust-Event": row.event,
        "Gust-Delivery": str(row.id),
    }
    if hook is None:
        headers.update(row.headers or {})
    elif hook.secret:
        headers["Gust-Signature"] = "sha256=" + sign(hook.secret, body)
    try:
        with _session().post(
            _url(row), data=body, headers=headers, timeout=timeout, allow_redirects=False, stream=True
        ) as resp:
            if 200 <= resp.status_code < 300:
                return resp.status_code, None
            excerpt = resp.raw.read(300, decode_content=True).decode("utf-8", "replace").strip()
            return resp.status_code, f"HTTP {resp.status_code}" + (f": {excerpt}" if excerpt else "")
    except requests.RequestException as exc:
        return None, f"{type(exc).__name__}: {exc}"[:1000]


def sign(secret: str, body: bytes) -> str:
    """Hex HMAC-SHA256 of the body, as sent in ``Gust-Signature: sha256=<hex>``."""
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def _record(
    row: WebhookDelivery, status: int | None, error: str | None, give_up: bool, max_attempts: int, now: datetime
) -> None:
    attempts = row.attempts + 1
    where = WebhookDelivery.objects.filter(id=row.id, state=PENDING)
    url = _shown(_url(row))
    if error is None:
        where.update(state=DELIVERED, attempts=attempts, last_status=status, last_error=None, delivered_at=now)
        logger.info("%s is published to %s (delivery %s)", _line(row), url, row.id)
    elif give_up or attempts >= max_attempts:
        where.update(state=FAILED, attempts=attempts, last_status=status, last_error=error)
        logger.error(
            "%s was not published to %s after %s attempts, giving up (delivery %s): %s",
            _line(row),
            url,
            attempts,
            row.id,
            error,
        )
    else:
        delay = min(2**attempts, MAX_BACKOFF)
        where.update(
            attempts=attempts, last_status=status, last_error=error, next_attempt_at=now + timedelta(seconds=delay)
        )
        logger.warning(
            "%s could not be published to %s (delivery %s, attempt %s of %s, next in %ss): %s",
            _line(row),
            url,
            row.id,
            attempts,
            max_attempts,
            delay,
            error,
        )


def _line(row: WebhookDelivery) -> str:
    """Seed 000's wording: ``[<exec id>] The task event TASK_SUCCEEDED for <task id>``."""
    payload = row.payload if isinstance(row.payload, dict) else {}
    if payload.get("task_id"):
        subject = f"task event {row.event} for {payload['task_id']}"
    elif row.event.startswith("WORKFLOW_") and row.execution_id:
        subject = f"workflow event {row.event} for {row.execution_id}"
    else:  # another app's event: name its own object (e.g. approval_id) when it has one
        own = next((v for k, v in payload.items() if k.endswith("_id") and k != "execution_id" and v), None)
        subject = f"event {row.event} for {payload.get('id') or own or row.execution_id or '-'}"
    return f"[{row.execution_id or '-'}] The {subject}"


def _shown(url: str) -> str:
    """The URL for logs, without credentials or query string."""
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, netloc, parts.path, "…" if parts.query else "", ""))


_local = threading.local()


def _session() -> requests.Session:
    # Keep-alive per thread: a Session is not guaranteed thread-safe.
    session = getattr(_local, "session", None)
    if session is None:
        session = _local.session = egress.session()
    return session
