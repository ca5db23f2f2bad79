"""The results tracker: StackStorm's resultstracker, done right (seed 001).

- Work lives in the database (``TrackedAction.next_query_at``); a restarted
  tracker simply finds it there.
- Any number of trackers share it: each cycle claims a batch of due rows
  (``SKIP LOCKED`` on PostgreSQL; SQLite's IMMEDIATE transactions serialize
  claims) with a lease, so no row is queried twice at once.
- Queries run in a pool of ``THREAD_POOL_SIZE`` threads, outside any
  transaction; each result goes through the same service as a callback.
- A query error backs off exponentially and retries; nothing is dropped.
- ``run_once()`` is one synchronous cycle for tests; ``start()``/``stop()``
  run it in a loop, and ``stop()`` finishes in-flight queries and releases
  claims (graceful shutdown, seed 004).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

from django.db import close_old_connections, connection, connections, transaction
from django.db.models import F, Min, Q
from django.utils import timezone
from django.utils.module_loading import import_string

from tracker import conf
from tracker.models import TrackedAction, TrackerProcess
from tracker.queries import QueryResult, query_for
from workflows import services as wf_services
from workflows.errors import GustError

logger = logging.getLogger("gust.tracker")


class Tracker:
    def __init__(
        self,
        name: str | None = None,
        queries: Callable[[str], Callable | None] = query_for,
        clock: Callable = timezone.now,
        query_interval: float | None = None,
        thread_pool_size: int | None = None,
    ):
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.queries = queries
        self.clock = clock
        self.query_interval = query_interval or conf.get("QUERY_INTERVAL")
        self.pool_size = thread_pool_size or conf.get("THREAD_POOL_SIZE")
        self._pool: ThreadPoolExecutor | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # periodic_errors: periodic work that failed, a hook that raised or one
        # item of a sweep (e.g. an overdue action whose failing raised).
        self.counters = {"queries": 0, "completions": 0, "errors": 0, "periodic_errors": 0}

    # -- one cycle --

    def claim(self, now) -> list[TrackedAction]:
        """Take up to BATCH due rows for this tracker, with a lease."""
        with transaction.atomic():
            qs = (
                TrackedAction.objects.filter(next_query_at__lte=now)
                .filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
                .order_by("next_query_at")
            )
            if connection.features.has_select_for_update_skip_locked:
                qs = qs.select_for_update(skip_locked=True)
            ids = list(qs.values_list("id", flat=True)[: conf.get("BATCH")])
            if not ids:
                return []
            TrackedAction.objects.filter(id__in=ids).update(
                claimed_by=self.name, claimed_until=now + timedelta(seconds=conf.get("LEASE"))
            )
        return list(TrackedAction.objects.filter(id__in=ids, claimed_by=self.name).select_related("action"))

    def _jobs(self, items: list[TrackedAction]) -> list[tuple[Callable | None, list[TrackedAction]]]:
        """One job per item, except for query functions marked ``many``, which
        answer a whole batch of their action class in one call."""
        jobs, batches = [], {}
        for item in items:
            fn = self.queries(item.action.name)
            if fn is not None and getattr(fn, "many", False):
                batches.setdefault(fn, []).append(item)
            else:
                jobs.append((fn, [item]))
        return jobs + list(batches.items())

    @staticmethod
    def _run_job(job) -> list[tuple[TrackedAction, QueryResult | None, Exception | None]]:
        fn, items = job
        try:
            if fn is None:
                raise LookupError(f"no query function for {items[0].action.name}")
            if getattr(fn, "many", False):
                answers = fn([i.action for i in items])
                out = []
                for i in items:
                    answer = answers.get(i.action_id, QueryResult.running())
                    out.append((i, None, answer) if isinstance(answer, Exception) else (i, answer, None))
                return out
            return [(items[0], fn(items[0].action), None)]
        except Exception as exc:  # any failure of an outside query is retried later
            return [(i, None, exc) for i in items]

    def _run_job_in_pool(self, job):
        try:
            return self._run_job(job)
        finally:
            connections.close_all()  # this pool thread's own connections, if the query used any

    def run_once(self) -> dict:
        """Query every due item once; returns counts of this cycle."""
        now = self.clock()
        items = self.claim(now)
        counts = {"claimed": len(items), "completed": 0, "running": 0, "errors": 0}
        if items:
            jobs = self._jobs(items)
            if self.pool_size > 1 and len(jobs) > 1:
                pool = self._pool or ThreadPoolExecutor(self.pool_size, thread_name_prefix="gust-tracker")
                results = [r for rs in pool.map(self._run_job_in_pool, jobs) for r in rs]
                if pool is not self._pool:
                    pool.shutdown()
            else:
                results = [r for job in jobs for r in self._run_job(job)]
            still_running: dict[float, list[int]] = {}
            for item, result, error in results:
                if error is None and not result.done:
                    interval = item.query_interval or self.query_interval
                    still_running.setdefault(interval, []).append(item.id)
                    counts["running"] += 1
                else:
                    counts[self._settle(item, result, error)] += 1
            self._reschedule(still_running, now)
        self.counters["queries"] += counts["claimed"]
        self.counters["completions"] += counts["completed"]
        self.counters["errors"] += counts["errors"]
        self._run_periodic()
        return counts

    def _reschedule(self, by_interval: dict[float, list[int]], cycle_start) -> None:
        """Items still running: one UPDATE per interval, not one per item. The
        next query counts from the start of this cycle, so the period does not
        stretch by the time the cycle took."""
        now = self.clock()
        for interval, ids in by_interval.items():
            TrackedAction.objects.filter(id__in=ids, claimed_by=self.name).update(
                next_query_at=cycle_start + timedelta(seconds=interval), errors=0, claimed_by=None,
                claimed_until=None, last_query_at=now, queries=F("queries") + 1,
            )

    def _settle(self, item: TrackedAction, result: QueryResult | None, error: Exception | None) -> str:
        now = self.clock()
        if error is None:
            try:
                # Its action_finished receiver deletes the tracking row in the same transaction.
                wf_services.complete_action(item.action_id, result.state, result.output)
            except GustError as exc:  # completed by a callback meanwhile: the first result won
                logger.info("poll result for %s not applied: %s", item.action_id, exc.message)
                TrackedAction.objects.filter(id=item.id).delete()
            return "completed"
        interval = item.query_interval or self.query_interval
        errors = item.errors + 1
        backoff = min(interval * (2 ** errors), conf.get("MAX_BACKOFF"))
        TrackedAction.objects.filter(id=item.id, claimed_by=self.name).update(
            claimed_by=None, claimed_until=None, last_query_at=now, queries=F("queries") + 1,
            next_query_at=now + timedelta(seconds=backoff), errors=errors, last_error=str(error)[:2000],
        )
        logger.warning(
            "query of %s failed (%s in a row), next try in %.1f s: %s", item.action_id, errors, backoff, error
        )
        return "errors"

    def _run_periodic(self) -> None:
        """Call each periodic hook. A hook may return an object with an
        ``errors`` count (items it logged and skipped, as the overdue sweep
        does); those and a hook that raises add to ``periodic_errors``."""
        hooks = [
            "tracker.services.process_inbox",
            "workflows.services.fail_overdue_actions",
            "workflows.services.continue_stalled",
            "workflows.dispatch.redispatch_unclaimed",
            "tracker.notifier.retry_due",
            *conf.get("PERIODIC"),
        ]
        for path in hooks:
            try:
                outcome = import_string(path)()
            except Exception:  # one broken hook must not stop polling
                logger.exception("periodic hook %s failed", path)
                self.counters["periodic_errors"] += 1
            else:
                self.counters["periodic_errors"] += getattr(outcome, "errors", 0)

    # -- lifecycle --

    def next_due_in(self) -> float:
        nxt = TrackedAction.objects.aggregate(m=Min("next_query_at"))["m"]
        if nxt is None:
            return self.query_interval
        return max(0.0, min(self.query_interval, (nxt - self.clock()).total_seconds()))

    def _beat(self, stopped: bool = False) -> None:
        now = self.clock()
        TrackerProcess.objects.update_or_create(
            name=self.name,
            defaults=dict(last_seen=now, query_interval=self.query_interval, thread_pool_size=self.pool_size,
                          stopped_at=now if stopped else None, **self.counters),
            create_defaults=dict(started_at=now, last_seen=now, query_interval=self.query_interval,
                                 thread_pool_size=self.pool_size, **self.counters),
        )

    def start(self) -> None:
        self._pool = ThreadPoolExecutor(self.pool_size, thread_name_prefix="gust-tracker")
        self._beat()
        pending = TrackedAction.objects.count()
        logger.info("tracker %s started: %d tracked action(s) reloaded from the database, "
                    "QUERY_INTERVAL=%s s, THREAD_POOL_SIZE=%s", self.name, pending, self.query_interval, self.pool_size)
        self._thread = threading.Thread(target=self._loop, name="gust-tracker-loop", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        last_beat = 0.0
        while not self._stop.is_set():
            try:
                self.run_once()
                if self.clock().timestamp() - last_beat >= 1.0:
                    self._beat()
                    last_beat = self.clock().timestamp()
                wait = max(0.01, self.next_due_in())
            except Exception:
                logger.exception("tracker cycle failed; retrying")
                close_old_connections()
                wait = self.query_interval
            self._stop.wait(wait)
        connections.close_all()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop claiming, let in-flight queries finish, release claims."""
        self._stop.set()
        if self._thread:
            self._thread.join(timeout)
        if self._pool:
            self._pool.shutdown(wait=True)
        released = TrackedAction.objects.filter(claimed_by=self.name).update(claimed_by=None, claimed_until=None)
        self._beat(stopped=True)
        logger.info("tracker %s stopped (released %d claim(s))", self.name, released)

