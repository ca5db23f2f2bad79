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
import time
from datetime import timedelta

from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.module_loading import import_string
from django_q.conf import Conf

from core import actions, adhoc
from core.states import State
from workflows import completions, conf, queue, services
from workflows.errors import Conflict, NotFound
from workflows.models import HANDED_OVER, ActionExecution

logger = logging.getLogger("gust.dispatch")


enqueue = queue.run_actions
enqueue_continue = queue.continue_later

# Set by ``manage.py worker``'s sentinel (workflows.cluster) when it stops: a
# flag in memory its pool shares, so a job of several actions hands the ones
# it has not started back to the queue, as the sentinel does with prefetched jobs.
STOPPING = None


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
    ids = list(
        ActionExecution.objects.filter(
            Q(name__in=names) | Q(**{f"runtime_context__{adhoc.KEY}__base__in": names}),
            state=State.RUNNING,
            worker_started_at__isnull=True,
            updated_at__lt=before,
        )
        .exclude(runtime_context__has_key=HANDED_OVER)
        .values_list("id", flat=True)[:limit]
    )
    if ids:
        ActionExecution.objects.filter(id__in=ids, worker_started_at__isnull=True).update(updated_at=now)
        enqueue(ids)
        logger.warning("queued %d unclaimed worker action(s) again (a lost job or a deep queue)", len(ids))
    return len(ids)


def continue_execution(execution_id: str) -> None:
    """The job after a transaction that reached the engine's step limit."""
    services.continue_execution(execution_id)


def run_action(action_id: str) -> None:
    """The job of one worker action (what ``queue.run_actions`` enqueues)."""
    run_actions([action_id])


def run_actions(action_ids: list[str]) -> None:
    """The job of one or more worker actions, run one after the other.

    The worker's pusher merges the ``run_action`` jobs of one dequeue into
    this (``queue.pusher``), so a deep queue costs one job, one load and one
    acknowledgement per batch instead of per action. Each action is claimed
    in a write transaction of its own just before it runs, as a single job
    claims it, so a worker lost mid-batch leaves the rest unclaimed (queued
    again by ``redispatch_unclaimed``) and never runs one twice. That
    transaction also stores the result of the action before it: one write
    per action instead of two (claim, then complete). A result whose storing
    raises is handled as by a job of its own.
    """
    # Not select_related: the workflow execution's spec and context (JSON, often
    # large) were parsed for every job and no implementation reads them; the
    # async ones read the task's id, fetched when they ask.
    rows = {a.id: a for a in ActionExecution.objects.filter(id__in=action_ids)}
    todo = []
    for action_id in dict.fromkeys(action_ids):  # in order, each once
        action = rows.get(action_id)
        if action is None or action.state != State.RUNNING:
            logger.info("action %s is gone or no longer RUNNING; nothing to run", action_id)
        else:
            todo.append(action)
    batch = _Batch()
    with _Lease(batch):
        for i, action in enumerate(todo):
            if (STOPPING is not None and STOPPING.value) or (i and batch.over_time()):
                # A stopping worker finishes only what it started, and a job's time is bounded.
                batch.store()
                queue.run_actions([a.id for a in todo[i:]], inline=False)
                logger.info("returned %d prefetched job(s) to the queue", len(todo) - i)
                break
            if not batch.store(claim=action.id):
                logger.warning(
                    "action %s was already started by a worker (this job was delivered again); not run twice", action.id
                )
                continue
            _run_claimed(action, batch)
        batch.store()
    batch.raise_first_error()


def _run_claimed(action: ActionExecution, batch: _Batch) -> None:
    adef = actions.get(action.run_name)  # an ad-hoc action runs its base (core.adhoc)
    impl = import_string(adef.impl)
    try:
        result = impl(action.run_input, action)
    except actions.ActionFailed as exc:
        batch.pending = (action.id, State.ERROR, exc.error)
    except Exception as exc:  # any failure of the action itself ends it in ERROR
        logger.exception("action %s (%s) raised", action.id, action.name)
        batch.pending = (action.id, State.ERROR, f"{type(exc).__name__}: {exc}")
    else:
        if adef.is_sync:
            batch.pending = (action.id, State.SUCCESS, result)
        else:  # handed to the outside system: from now on it answers, or heartbeats
            batch.running = None
            services.record_action_info(action.id, result or {}, started=True)


class _Batch:
    """A ``run_actions`` job's state: the result not stored yet (it goes
    with the next claim) and the action whose lease is held."""

    def __init__(self):
        self.pending: tuple[str, str, object] | None = None
        self.running: str | None = None
        self.started = time.monotonic()
        self.errors: list[BaseException] = []

    def over_time(self) -> bool:
        # Half django-q2's job timeout, after which the worker would be killed.
        return bool(Conf.TIMEOUT) and time.monotonic() - self.started > Conf.TIMEOUT / 2

    def store(self, claim: str | None = None) -> bool:
        """Store the pending result, and claim ``claim`` if given, in one
        write transaction; True when ``claim`` was claimed (False: it is not
        RUNNING, or another delivery started it)."""
        pending, self.pending = self.pending, None
        self.running = None
        if claim is None:
            if pending is not None:  # the last one: as a single job, one complete_action
                self._report(*pending)
            return False
        if pending is None:
            claimed = _claim(claim)
        else:
            try:
                with transaction.atomic():
                    self._report(*pending)  # complete_action's own atomic block is a savepoint here
                    claimed = services.claim_for_worker(claim)
            except Exception:  # the claim, or the commit, failed: nothing of it was stored
                logger.exception(
                    "storing the result of %s with the claim of %s failed; again one by one", pending[0], claim
                )
                self._report(*pending)
                claimed = _claim(claim)
        if claimed:
            self.running = claim
        return claimed

    def _report(self, action_id: str, state: str, result) -> None:
        try:
            _report(action_id, state, result)
        except Exception as exc:  # rolled back (to its savepoint): the lease stops, the overdue sweep decides
            logger.exception("the result of action %s could not be stored", action_id)
            self.errors.append(exc)

    def raise_first_error(self) -> None:
        if self.errors:  # the job is recorded as failed, as a single job whose complete_action raised
            raise self.errors[0]


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
    """Renews the lease of the action a ``run_actions`` job is running, so
    the overdue sweep fails it ("worker lost") only once this worker is gone."""

    def __init__(self, batch: _Batch):
        self.batch = batch
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._renew, name="lease", daemon=True)

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
                action_id = self.batch.running
                if action_id is not None and not services.renew_lease(action_id):
                    # finished (cancelled, completed by hand): nothing left to hold for it
                    if self.batch.running == action_id:
                        self.batch.running = None
        except Exception:  # the next renewal, or the sweep, sorts it out
            logger.exception("renewing the lease of action %s failed", self.batch.running)
        finally:
            connection.close()
