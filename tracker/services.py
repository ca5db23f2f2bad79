"""Async completion: signed callbacks, tracking rows, the early-callback inbox
and tracker figures. Every result, from a callback or a poll, goes through
``workflows.services.complete_action`` — the one door of the engine."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db import connection, transaction
from django.db.models import Min, Q
from django.utils import timezone

from core.states import State
from tracker import conf, latency, remote
from tracker.models import CallbackInbox, TrackedAction, TrackerProcess
from tracker.queries import http_status, query_for
from workflows import callbacks
from workflows import services as wf_services
from workflows.errors import Conflict, GustError, InvalidInput, NotFound
from workflows.models import ActionExecution

logger = logging.getLogger("gust.tracker")


class Gone(GustError):
    """An old attempt's or an expired callback token: 410, nothing changes."""

    status = 410


class Forbidden(GustError):
    status = 403


class TooBusy(GustError):
    """The early-callback inbox is full: 429, nothing stored; the caller retries."""

    status = 429


# --- tracking rows -----------------------------------------------------------


def seconds_or_none(value: Any, low: float = 0.01, high: float = 7 * 24 * 3600.0) -> float | None:
    """A per-action ``query_interval`` or ``grace`` as a number of seconds
    within [low, high]; anything else (an expression that gave text, a
    negative number) means "the tracker's setting" rather than a broken row."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    return seconds if low <= seconds <= high else None


def track(
    action_id: str, mode: str = "poll", added_by: str = "operator", query_interval: float | None = None
) -> TrackedAction:
    """Start (or re-arm) polling one RUNNING async action, e.g. from
    ``manage.py track_result``. Raises NotFound, Conflict (not RUNNING) or
    InvalidInput (no query function for its action class, bad mode)."""
    if mode not in ("poll", "hybrid"):
        raise InvalidInput(f"tracking mode must be poll or hybrid, not {mode!r}")
    with transaction.atomic():
        action = ActionExecution.objects.select_for_update().filter(id=action_id).first()
        if action is None:
            raise NotFound("ActionExecution", action_id)
        if action.state != State.RUNNING:
            raise Conflict(f"Action execution {action_id} is {action.state}; there is nothing to track", action.state)
        query = query_for(action.name)
        if query is None:
            raise InvalidInput(
                f"No query function for {action.name}: it can only be completed through the API "
                f"(PUT /v2/action_executions/{action_id})"
            )
        if (
            query is http_status
            and action.handed_over
            and not (action.input.get("status_url") or action.runtime_context.get("status_url"))
        ):
            raise InvalidInput(
                f"Action execution {action_id} has no status_url to poll: neither its input nor the job's "
                f"answer named one; it can only be completed through its callback URL or "
                f"PUT /v2/action_executions/{action_id}"
            )
        if not may_be_tracked(action):  # so that its end deletes the row (on_action_finished)
            action.runtime_context = {**(action.runtime_context or {}), TRACKED: True}
            action.save(update_fields=["runtime_context"])
        now = timezone.now()
        row, _ = TrackedAction.objects.update_or_create(
            action=action,
            defaults=dict(
                mode=mode,
                query_interval=query_interval,
                next_query_at=now,
                scheduled=True,
                added_by=added_by,
                errors=0,
                last_error=None,
                claimed_by=None,
                claimed_until=None,
            ),
        )
    return row


def untrack(action_id: str) -> bool:
    """Stop polling one action; True when it was tracked. The action itself
    is untouched (it can still complete by callback)."""
    deleted, _ = TrackedAction.objects.filter(action_id=action_id).delete()
    return bool(deleted)


def on_async_action_started(sender: object, action: ActionExecution, **kwargs: object) -> None:
    """Receiver: an async action declared ``tracking: poll|hybrid`` gets its row
    in the same transaction that created it."""
    mode = action.input.get("tracking") or "callback"
    if mode not in ("poll", "hybrid") or query_for(action.name) is None:
        return
    # Due at once but not scheduled: the tracker that claims it sets the
    # first query time from its own QUERY_INTERVAL / HYBRID_GRACE.
    TrackedAction.objects.create(
        action_id=action.id,
        mode=mode,
        query_interval=seconds_or_none(action.input.get("query_interval")),
        grace=seconds_or_none(action.input.get("grace"), low=0.0),
        next_query_at=timezone.now(),
        scheduled=False,
    )


def on_action_finished(sender: object, action: ActionExecution, **kwargs: object) -> None:
    """Receiver: a finished action needs no more queries, however it finished.
    Only async actions are ever tracked, so sync ones cost no query."""
    if not action.is_sync and may_be_tracked(action):
        TrackedAction.objects.filter(action_id=action.id).delete()


TRACKED = "tracked"  # runtime_context key: track() made a row for an action not declared poll or hybrid


def may_be_tracked(action: ActionExecution) -> bool:
    """Whether a TrackedAction row can exist for this action: it declared
    ``tracking: poll|hybrid``, or ``track()`` (by hand, or after a failed
    notification fetch) marked it. A callback-only action's completion then
    costs no DELETE."""
    return (action.input or {}).get("tracking") in ("poll", "hybrid") or bool(
        (action.runtime_context or {}).get(TRACKED)
    )


# --- callbacks ---------------------------------------------------------------


@dataclass
class CallbackOutcome:
    status: int  # 200 applied or repeated, 202 stored for later
    action: ActionExecution | None = None


def _read(token: str) -> tuple[str, int, float]:
    try:
        return callbacks.read_token_with_age(token, conf.get("CALLBACK_TTL"))
    except callbacks.TokenExpired:
        raise Gone("This callback URL has expired") from None
    except callbacks.TokenForged:
        raise Forbidden("Invalid callback token") from None


def check_token(token: str) -> None:
    """Raises Forbidden (forged) or Gone (expired) for a callback token."""
    _read(token)


_ATTEMPT_AND_STATE = f"SELECT attempt, state FROM {ActionExecution._meta.db_table} WHERE id = %s"


def _resolve(token: str) -> tuple[str, int, bool]:
    """(action id, attempt, whether the action is visible yet).

    Raises Gone when the token belongs to an attempt older than the action's
    current one, or to an action that does not exist and can no longer be in
    the middle of being dispatched: a token signed more than IN_FLIGHT_WINDOW
    seconds ago whose action is not visible was deleted (or never committed).
    """
    action_id, attempt, age = _read(token)
    with connection.cursor() as cursor:  # plain SQL: the ORM's compiler cost more than the read (a callback each)
        cursor.execute(_ATTEMPT_AND_STATE, [action_id])
        row = cursor.fetchone()
    current, action_state = row if row is not None else (None, None)
    if current is None and age > conf.get("IN_FLIGHT_WINDOW"):
        raise Gone(f"Action execution {action_id} does not exist (deleted, or its dispatch was rolled back)")
    if current is not None and attempt < current:
        raise Gone(f"This callback URL belongs to attempt {attempt}; action {action_id} is at attempt {current}")
    # A retry or a rerun makes its new action only after this one ended, so
    # a RUNNING action has no successor to look for (two statements saved on
    # every callback); with-items siblings that run beside it are not newer attempts.
    newer = wf_services.superseded_by(action_id) if current is not None and action_state != State.RUNNING else None
    if newer is not None:
        raise Gone(f"This callback URL belongs to an earlier attempt of its task: action {newer} runs it now")
    return action_id, attempt, current is not None


def _store_early(action_id: str, attempt: int, state: str, output: Any) -> None:
    """Keep a result that arrived before its action became visible: one per
    attempt (a repeat of the same result is a no-op, a different one a
    conflict), and about INBOX_MAX waiting in all. No transaction of its own:
    on SQLite one would queue behind the very dispatch it is waiting for; two
    racing copies of one result are harmless (the inbox applies it once)."""
    waiting = CallbackInbox.objects.filter(action_id=action_id, attempt=attempt, applied_at__isnull=True).first()
    if waiting is not None:
        if (waiting.state, waiting.output) != (state, output):
            raise Conflict(f"A different result for action execution {action_id} is already waiting", "RUNNING")
        return
    if CallbackInbox.objects.filter(applied_at__isnull=True).count() >= conf.get("INBOX_MAX"):
        raise TooBusy("Too many early callbacks are waiting for their actions; try again shortly")
    CallbackInbox.objects.create(action_id=action_id, attempt=attempt, state=state, output=output)
    # (Its finished_at is not kept: the inbox's received_at is when Gust got it.)


def apply_callback(
    token: str, state: str, output: Any, finished_at: Any = None, received_at: datetime | None = None
) -> CallbackOutcome:
    """Complete an action through its signed URL.

    200 with the action when applied, or when the same result was already
    stored; 202 when its action is not visible yet (the dispatching
    transaction has not committed): the result waits in the inbox and is
    applied exactly once. Raises Forbidden (403), Gone (410: expired, or an
    older attempt), Conflict (409: a different result is stored),
    InvalidInput (400). None of these changes anything. ``finished_at``: when
    the outside system says the job ended; ``received_at``: when the request
    arrived (both for tracker.latency).
    """
    if state not in (State.SUCCESS, State.ERROR):
        raise InvalidInput(f"state must be SUCCESS or ERROR, not {state!r}")
    action_id, attempt, visible = _resolve(token)
    if not visible:
        _store_early(action_id, attempt, state, output)
        logger.info("callback for %s arrived before its action is visible; stored", action_id)
        return CallbackOutcome(202)
    with latency.completing("callback", detected_at=received_at or timezone.now(), outside_done_at=finished_at):
        return CallbackOutcome(200, wf_services.complete_action(action_id, state, output))


@dataclass
class NotificationOutcome:
    applied: bool  # this notification completed the action
    detail: str
    action: ActionExecution | None = None
    status: int = 200  # 202: the output is left to the tracker to fetch


def apply_notification(token: str, body: Any, received_at: datetime | None = None) -> NotificationOutcome:
    """A Mistral execution notification (the webhook publisher's body: the
    execution's ``id``, ``state``, ``state_info``, ... and ``event``) for the
    ``mistral.workflow`` action of a signed URL.

    WORKFLOW_FAILED and WORKFLOW_CANCELLED end the action in ERROR with the
    remote's state_info. WORKFLOW_SUCCEEDED carries no output, so the remote
    execution is fetched once (outside any transaction); if that fails, the
    action is tracked by polling at once and the answer is 202. Other events
    are ignored. An action that already finished (its poll came first, or it
    was cancelled) is left as it is: 200 with ``applied`` false. Raises
    Forbidden, Gone, NotFound, InvalidInput (not a notification, another
    execution's, not a mistral.workflow action).
    """
    action_id, _, visible = _resolve(token)  # the credential first: a forged URL learns nothing
    if not isinstance(body, dict) or not isinstance(body.get("event"), str) or not isinstance(body.get("id"), str):
        raise InvalidInput("Send Mistral's execution notification: a JSON object with 'event' and 'id'")
    action = ActionExecution.objects.filter(id=action_id).first() if visible else None
    if action is None:
        raise NotFound("ActionExecution", action_id)
    if action.name != remote.NAME:
        raise InvalidInput(
            f"Action execution {action_id} is {action.name}, not {remote.NAME}: this URL takes no notification"
        )
    remote_id, event = body["id"], body["event"]
    known = action.runtime_context.get(remote.REMOTE_ID)
    if known and known != remote_id:
        raise InvalidInput(
            f"This notification is about execution {remote_id}; action execution {action_id} "
            f"tracks remote execution {known}"
        )
    if event not in remote.FINISH_EVENTS:
        return NotificationOutcome(
            False, f"event {event} ignored: only {', '.join(remote.FINISH_EVENTS)} end it", action
        )
    if action.state != State.RUNNING:
        return NotificationOutcome(False, f"action execution {action_id} is already {action.state}", action)
    received_at = received_at or timezone.now()
    if event == "WORKFLOW_SUCCEEDED":
        try:
            result = remote.fetch(action.input, remote_id, most=remote.NOTIFICATION_FETCH_TIMEOUT)
        except remote.QueryError as exc:
            result = None
            reason = str(exc)
        else:
            reason = f"the remote says execution {remote_id} is still running"
        # remote.fetch gives every done result its state (SUCCESS or ERROR);
        # the last test says so to the type checker.
        if result is None or not result.done or result.state is None:
            track(action_id, mode="poll", added_by="notification")
            return NotificationOutcome(
                False, f"the output could not be fetched ({reason}); the tracker polls for it", action, status=202
            )
        state, output = result.state, result.output
    elif event == "WORKFLOW_FAILED":
        state, output = State.ERROR, remote.failure(remote_id, body.get("state_info"))
    else:
        state, output = State.ERROR, remote.cancelled(remote_id, body.get("state_info"))
    try:
        # (Mistral's updated_at has whole seconds: too coarse for an "outside done" time.)
        with latency.completing("callback", detected_at=received_at, door="notification"):
            action = wf_services.complete_action(action_id, state, output)
    except Conflict as exc:  # a poll, or a cancel, came first: the first result won
        return NotificationOutcome(False, exc.message, ActionExecution.objects.filter(id=action_id).first())
    return NotificationOutcome(True, f"completed {state}", action)


def heartbeat(token: str) -> ActionExecution:
    """The outside system is still working: move the action's deadline on."""
    action_id, _, visible = _resolve(token)
    if not visible:
        raise NotFound("ActionExecution", action_id)
    return wf_services.extend_deadline(action_id, conf.get("HEARTBEAT_EXTENSION"))


def process_inbox(now: datetime | None = None) -> int:
    """Apply stored early callbacks whose action is now visible; give up on
    those that waited longer than INBOX_GIVE_UP. Returns how many were handled."""
    now = now or timezone.now()
    handled = 0
    for item_id in CallbackInbox.objects.filter(applied_at__isnull=True).values_list("id", flat=True)[:200]:
        with transaction.atomic():
            item = CallbackInbox.objects.select_for_update().filter(id=item_id, applied_at__isnull=True).first()
            if item is None:
                continue  # another tracker took it
            action = ActionExecution.objects.filter(id=item.action_id).first()
            if action is None:
                if (now - item.received_at).total_seconds() < conf.get("INBOX_GIVE_UP"):
                    continue
                item.outcome = "given up: the action never appeared"
            elif item.attempt < action.attempt:
                item.outcome = f"ignored: attempt {item.attempt} is older than {action.attempt}"
            else:
                try:
                    with latency.completing("callback", detected_at=item.received_at, door="inbox"):
                        wf_services.complete_action(item.action_id, item.state, item.output)
                    item.outcome = "applied"
                except GustError as exc:
                    item.outcome = f"refused: {exc.message}"
            item.applied_at = now
            item.save(update_fields=["applied_at", "outcome"])
            handled += 1
    return handled


# --- figures -----------------------------------------------------------------


def stats(now: datetime | None = None) -> dict:
    now = now or timezone.now()
    # Due and nobody working on it: a leased row's schedule lives in its
    # tracker's memory, which reports its own lag with its heartbeat.
    leasing = TrackerProcess.objects.filter(
        stopped_at__isnull=True, last_seen__gte=now - timedelta(seconds=conf.get("LEASE"))
    )
    due = TrackedAction.objects.filter(
        Q(claimed_by__isnull=True, next_query_at__lte=now)
        | (Q(claimed_until__lt=now) & ~Q(claimed_by__in=leasing.values("name")))
    )
    oldest_due = due.aggregate(m=Min("next_query_at"))["m"]
    alive_after = now - timedelta(seconds=max(3 * conf.get("QUERY_INTERVAL"), 10))
    processes = []
    alive = list(TrackerProcess.objects.filter(stopped_at__isnull=True, last_seen__gte=alive_after))
    for p in alive:
        up = max((p.last_seen - p.started_at).total_seconds(), 1e-9)
        processes.append(
            {
                "name": p.name,
                "started_at": p.started_at,
                "last_seen": p.last_seen,
                "query_interval": p.query_interval,
                "thread_pool_size": p.thread_pool_size,
                "queries": p.queries,
                "completions": p.completions,
                "errors": p.errors,
                "periodic_errors": p.periodic_errors,
                "held": p.held,
                "lag_s": p.lag_s,
                "queries_per_s": round(p.queries / up, 3),
            }
        )
    return {
        "tracked": TrackedAction.objects.count(),
        "by_mode": {m: TrackedAction.objects.filter(mode=m).count() for m in ("poll", "hybrid")},
        "due": due.count(),
        "lag_s": round(max([(now - oldest_due).total_seconds() if oldest_due else 0.0, *(p.lag_s for p in alive)]), 3),
        "erroring": TrackedAction.objects.filter(errors__gt=0).count(),
        "inbox_pending": CallbackInbox.objects.filter(applied_at__isnull=True).count(),
        "query_interval": conf.get("QUERY_INTERVAL"),
        "thread_pool_size": conf.get("THREAD_POOL_SIZE"),
        "queries_per_s": round(sum(p["queries_per_s"] for p in processes), 3),
        "processes": processes,
        # Past their deadline and not failed yet: more than a moment's worth
        # means the overdue sweep is behind or keeps failing on these rows.
        "overdue": ActionExecution.objects.filter(state=State.RUNNING, deadline__lt=now).count(),
        "waiting_for_callback": ActionExecution.objects.filter(state=State.RUNNING, is_sync=False)
        .filter(Q(tracking__isnull=True))
        .count(),
    }
