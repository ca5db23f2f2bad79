"""Worker side: run actions that do I/O, then report through the services.

``enqueue`` is called from ``transaction.on_commit`` right after the
transaction that started the action, so there is no scheduler between a
task becoming ready and its action starting (seed 003). The job itself
takes an id, loads, does the I/O outside any transaction, and calls
``services.complete_action`` with the result.
"""

from __future__ import annotations

import logging
import threading
from datetime import timedelta

from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.module_loading import import_string

from core import actions, adhoc
from core.states import State
from workflows import completions, conf, queue, services
from workflows.errors import Conflict, NotFound
from workflows.models import HANDED_OVER, ActionExecution

logger = logging.getLogger("gust.dispatch")


enqueue = queue.run_actions
enqueue_continue = queue.continue_later


def redispatch_unclaimed(now=None, limit: int = 500) -> int:
    """Queue again the worker actions that no worker has claimed for
    WORKER_REDISPATCH_AFTER seconds: their job may have died with a worker
    that had prefetched it (the Redis broker forgets a job once handed out),
    or its enqueue was lost after commit. Safe by construction: a claimed
    action never runs twice, so a second job for one that is merely slow in a
    deep queue does nothing. Each is queued again at most once per interval.
    A tracker periodic hook; returns how many were queued."""
    now = now or timezone.now()
    names = [a.name for a in actions.every().values() if a.needs_worker]
    before = now - timedelta(seconds=conf.seconds("WORKER_REDISPATCH_AFTER"))
    ids = list(ActionExecution.objects.filter(
        Q(name__in=names) | Q(**{f"runtime_context__{adhoc.KEY}__base__in": names}),
        state=State.RUNNING, worker_started_at__isnull=True, updated_at__lt=before,
    ).exclude(runtime_context__has_key=HANDED_OVER).values_list("id", flat=True)[:limit])
    if ids:
        ActionExecution.objects.filter(id__in=ids, worker_started_at__isnull=True).update(updated_at=now)
        enqueue(ids)
        logger.warning("queued %d unclaimed worker action(s) again (a lost job or a deep queue)", len(ids))
    return len(ids)


def continue_execution(execution_id: str) -> None:
    """The job after a transaction that reached the engine's step limit."""
    services.continue_execution(execution_id)


def run_action(action_id: str) -> None:
    # Not select_related: the workflow execution's spec and context (JSON, often
    # large) were parsed for every job and no implementation reads them; the
    # async ones read the task's id, fetched when they ask.
    action = ActionExecution.objects.filter(id=action_id).first()
    if action is None or action.state != State.RUNNING:
        logger.info("action %s is gone or no longer RUNNING; nothing to run", action_id)
        return
    if not _claim(action_id):
        logger.warning("action %s was already started by a worker (this job was delivered again); not run twice",
                       action_id)
        return
    adef = actions.get(action.run_name)  # an ad-hoc action runs its base (core.adhoc)
    impl = import_string(adef.impl)
    try:
        with _Lease(action_id):
            result = impl(action.run_input, action)
    except actions.ActionFailed as exc:
        _report(action_id, State.ERROR, exc.error)
    except Exception as exc:  # any failure of the action itself ends it in ERROR
        logger.exception("action %s (%s) raised", action_id, action.name)
        _report(action_id, State.ERROR, f"{type(exc).__name__}: {exc}")
    else:
        if adef.is_sync:
            _report(action_id, State.SUCCESS, result)
        else:  # handed to the outside system: from now on it answers, or heartbeats
            services.record_action_info(action_id, result or {}, started=True)


def _claim(action_id: str) -> bool:
    """The claim as a write transaction of its own, so on SQLite it queues
    for the write lock with the other processes' transactions instead of
    sleeping in the busy handler (config/sqlite3/base.py)."""
    with transaction.atomic():
        return services.claim_for_worker(action_id)


def _report(action_id: str, state: str, result) -> None:
    try:
        # A sync action's result, or an async one that failed before its outside system had it.
        with completions.completing("failed to start", door="worker"):
            services.complete_action(action_id, state, result)
    except (Conflict, NotFound) as exc:
        # Completed, cancelled or deleted meanwhile: the first result wins.
        logger.info("result of action %s not applied: %s", action_id, exc)


class _Lease:
    """Renews the action's lease while its implementation runs, so the
    overdue sweep fails it ("worker lost") only once this worker is gone."""

    def __init__(self, action_id: str):
        self.action_id = action_id
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._renew, name=f"lease-{action_id}", daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._done.set()
        # Bounded: a renewal blocked on a lock (a caller's open transaction in
        # sync mode) must not hold the result back; the thread is a daemon.
        self._thread.join(timeout=1.0)
        return False

    def _renew(self):
        every = max(conf.seconds("WORKER_LEASE") / 3, 0.05)
        try:
            while not self._done.wait(every):
                if not services.renew_lease(self.action_id):
                    return  # finished (cancelled, completed by hand): nothing left to hold
        except Exception:  # the next renewal, or the sweep, sorts it out
            logger.exception("renewing the lease of action %s failed", self.action_id)
        finally:
            connection.close()
