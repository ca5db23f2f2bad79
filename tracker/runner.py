"""The results tracker: StackStorm's resultstracker, done right (seed 001).

- Work lives in the database (``TrackedAction.next_query_at``); a restarted
  tracker simply finds it there.
- Any number of trackers share it: each cycle claims a batch of due rows
  with one ``UPDATE … WHERE id IN (SELECT … LIMIT n [FOR UPDATE SKIP
  LOCKED]) RETURNING`` of the few columns it needs (SQLite's IMMEDIATE
  transactions serialize claims), with a lease, so no row is queried twice
  at once.
- The first query time of a new row is set here, when a tracker first claims
  it, from this tracker's QUERY_INTERVAL / HYBRID_GRACE; later ones stay on
  the item's grid (previous due time + interval), so a cycle's duration does
  not stretch the period.
- Queries run in a pool of ``THREAD_POOL_SIZE`` threads, outside any
  transaction (a ``many`` batch is split across the pool); each result is
  applied, through the same service as a callback, as soon as its query
  returns.
- The tracker's own writes of a cycle (rescheduling the previous cycle's
  still-running items, the claim, the heartbeat) share one transaction, so a
  cycle queues once on SQLite's single writer.
- A query error backs off exponentially and retries; nothing is dropped.
- ``run_once()`` is one synchronous cycle for tests; ``start()``/``stop()``
  run it in a loop, and ``stop()`` finishes in-flight queries and releases
  claims (graceful shutdown, seed 004).
"""

from __future__ import annotations

import logging
import math
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from django.db import close_old_connections, connection, connections, transaction
from django.db.models import Case, DateTimeField, ExpressionWrapper, F, Func, Q, Value, When
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.module_loading import import_string

from tracker import conf, http, latency
from tracker.models import TrackedAction, TrackerProcess
from tracker.queries import ActionInfo, QueryResult, query_for
from workflows import services as wf_services
from workflows.errors import GustError
from workflows.models import ActionExecution

logger = logging.getLogger("gust.tracker")

MIN_CHUNK = 50  # a many-batch is split across the pool, but not into requests smaller than this
ACTION_CACHE_MAX = 200_000  # handed-over actions whose query fields are kept between polls
PERIODIC_EVERY = 1.0  # seconds between two rounds of the periodic hooks in the loop
BEAT_EVERY = 1.0


@dataclass(slots=True)
class Item:
    """One claimed row: the columns the claim returns, and its action's query fields."""

    id: int
    action_id: str
    query_interval: float | None
    queries: int
    errors: int
    mode: str
    next_query_at: datetime
    action: ActionInfo | None = None


@dataclass
class Outcome:
    """What one query job found; the loop thread adds these up."""

    completed: int = 0
    running: list = field(default_factory=list)
    errors: list = field(default_factory=list)  # (item, exception)


class _PlusSeconds(Func):
    """``column + seconds``. On SQLite natively (``strftime``, millisecond
    precision) rather than through Django's Python date function, which costs
    about 20 µs per row, a fifth of the tracker's own work per poll."""

    output_field = DateTimeField()

    def __init__(self, expression, seconds: float):
        super().__init__(expression)
        self.seconds = float(seconds)

    def as_sql(self, compiler, connection, **extra):
        plus = ExpressionWrapper(self.source_expressions[0] + timedelta(seconds=self.seconds),
                                 output_field=DateTimeField())
        return compiler.compile(plus)

    def as_sqlite(self, compiler, connection, **extra):
        sql, params = compiler.compile(self.source_expressions[0])
        return f"strftime('%%Y-%%m-%%d %%H:%%M:%%f', {sql}, %s)", [*params, f"{self.seconds:+.6f} seconds"]


def _aware(value) -> datetime:
    """A datetime column as RETURNING gives it: aware on PostgreSQL, text on SQLite."""
    if isinstance(value, str):
        value = parse_datetime(value)
    return value if timezone.is_aware(value) else value.replace(tzinfo=UTC)


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
        self._actions: dict[str, ActionInfo] = {}
        # Results of the last cycle not written yet (the loop writes them with the next claim).
        self._pending_running: list[Item] = []
        self._pending_errors: list[tuple[Item, Exception]] = []
        self._pending_claimed_at = self._pending_answered_by = None
        self._last_beat = 0.0
        self._last_periodic = 0.0
        # periodic_errors: periodic work that failed, a hook that raised or one
        # item of a sweep (e.g. an overdue action whose failing raised).
        self.counters = {"queries": 0, "completions": 0, "errors": 0, "periodic_errors": 0}

    # -- claiming --

    def lookahead(self) -> float:
        """Items due this soon are claimed now, and the loop sleeps at least
        this long: one wake-up (claim, flush, the cycle's fixed queries) serves
        all items due close together, at the price of polling them at most
        a tenth of an interval early (never late)."""
        return min(0.25, self.query_interval / 10)

    def claim(self, now) -> list[Item]:
        """Write the previous cycle's results, then take up to BATCH due rows
        for this tracker with a lease: one write transaction."""
        with transaction.atomic():
            self._flush(now)
            items, unscheduled = self._claim_rows(now)
            if unscheduled:
                items = self._schedule_first(items, unscheduled, now)
            if time.monotonic() - self._last_beat >= BEAT_EVERY:
                self._beat()
        self._attach_actions(items)
        return items

    def _claim_rows(self, now) -> tuple[list[Item], set[int]]:
        qn = connection.ops.quote_name
        table = qn(TrackedAction._meta.db_table)
        adapt = connection.ops.adapt_datetimefield_value
        skip = " FOR UPDATE SKIP LOCKED" if connection.features.has_select_for_update_skip_locked else ""
        sql = (
            f"UPDATE {table} SET claimed_by = %s, claimed_until = %s WHERE id IN ("
            f"SELECT id FROM {table} WHERE next_query_at <= %s AND (claimed_until IS NULL OR claimed_until < %s) "
            f"ORDER BY next_query_at LIMIT %s{skip}) "
            f"RETURNING id, action_id, query_interval, queries, errors, mode, next_query_at, scheduled"
        )
        due_by = now + timedelta(seconds=self.lookahead())
        until = now + timedelta(seconds=conf.get("LEASE"))
        with connection.cursor() as cursor:
            cursor.execute(sql, [self.name, adapt(until), adapt(due_by), adapt(now), conf.get("BATCH")])
            rows = cursor.fetchall()
        items = [Item(r[0], r[1], r[2], r[3], r[4], r[5], _aware(r[6])) for r in rows]
        return items, {r[0] for r in rows if not r[7]}

    def _schedule_first(self, items: list[Item], unscheduled: set[int], now) -> list[Item]:
        """New rows are due at once but not scheduled: their first query comes
        one interval (hybrid: the grace) after they were created, by this
        tracker's settings. Those already that old are queried in this cycle."""
        by_id = {i.id: i for i in items if i.id in unscheduled}
        rows = TrackedAction.objects.filter(id__in=list(by_id)).values_list("id", "created_at", "grace")
        later: dict[float, list[int]] = {}
        keep = set()
        for row_id, created_at, grace in rows:
            item = by_id[row_id]
            if item.mode == "hybrid":
                delay = grace if grace is not None else conf.get("HYBRID_GRACE")
            else:
                delay = item.query_interval or self.query_interval
            first = created_at + timedelta(seconds=delay)
            if first <= now + timedelta(seconds=self.lookahead()):
                keep.add(row_id)
                item.next_query_at = first
            else:
                later.setdefault(delay, []).append(row_id)
        for delay, group in later.items():
            TrackedAction.objects.filter(id__in=group).update(
                next_query_at=F("created_at") + timedelta(seconds=delay), scheduled=True,
                claimed_by=None, claimed_until=None)
        if keep:
            TrackedAction.objects.filter(id__in=keep).update(scheduled=True)
        return [i for i in items if i.id not in by_id or i.id in keep]

    def _attach_actions(self, items: list[Item]) -> None:
        """The query fields of each item's action: from the cache once the
        action was handed over (they no longer change), else read, narrowly."""
        missing = [i.action_id for i in items if i.action_id not in self._actions]
        loaded = {}
        for start in range(0, len(missing), 500):
            chunk = missing[start:start + 500]
            for aid, name, inp, ctx, attempt in ActionExecution.objects.filter(id__in=chunk).values_list(
                    "id", "name", "input", "runtime_context", "attempt"):
                loaded[aid] = info = ActionInfo(aid, name, inp, ctx, attempt)
                if info.handed_over:
                    self._actions[aid] = info
        if len(self._actions) > ACTION_CACHE_MAX:
            for aid in list(self._actions)[: ACTION_CACHE_MAX // 10]:  # the oldest tenth
                del self._actions[aid]
        for item in items:
            item.action = self._actions.get(item.action_id) or loaded.get(item.action_id)

    # -- writing results --

    def _flush(self, now) -> None:
        """Reschedule the last cycle's still-running items (one UPDATE per
        interval, ``WHERE claimed_by = me``: completed rows are gone, errors
        are written first) and back off its errors. Call inside a transaction."""
        for item, error in self._pending_errors:
            self._back_off(item, error, now)
        if self._pending_running:
            claimed_at, answered_by = self._pending_claimed_at, self._pending_answered_by
            by_interval = {item.query_interval for item in self._pending_running}
            for key in by_interval:
                interval = key or self.query_interval
                mine = TrackedAction.objects.filter(claimed_by=self.name)
                mine = mine.filter(query_interval=key) if key else mine.filter(query_interval__isnull=True)
                mine.update(
                    next_query_at=self._next_due(interval, answered_by),
                    errors=0, claimed_by=None, claimed_until=None, last_query_at=claimed_at,
                    queries=F("queries") + 1)
        self._pending_running, self._pending_errors = [], []

    def _grid_floor(self, interval: float, answered_by) -> datetime:
        """The earliest previous due time that may stay on its grid: its next
        query (claimed up to a lookahead early) must come at least half an
        interval after the cycle's last answer."""
        return answered_by - timedelta(seconds=interval / 2 - self.lookahead())

    def _next_due(self, interval: float, answered_by):
        """On the item's grid (previous due time + interval), unless the item
        was polled so late (a busy cycle, a tracker behind) that this would be
        less than half an interval after its poll: then one interval after the
        cycle's last answer. So no item is asked twice in one interval, and a
        late tracker does not poll everything twice to catch up."""
        step = timedelta(seconds=interval)
        return Case(When(next_query_at__gte=self._grid_floor(interval, answered_by),
                         then=_PlusSeconds(F("next_query_at"), interval)),
                    default=Value(answered_by + step, output_field=DateTimeField()))

    def _next_due_of(self, item: Item, interval: float, answered_by):
        """``_next_due`` for one item in memory."""
        if item.next_query_at >= self._grid_floor(interval, answered_by):
            return item.next_query_at + timedelta(seconds=interval)
        return answered_by + timedelta(seconds=interval)

    def _back_off(self, item: Item, error: Exception, now) -> None:
        interval = item.query_interval or self.query_interval
        errors = item.errors + 1
        backoff = min(interval * (2 ** errors), conf.get("MAX_BACKOFF"))
        TrackedAction.objects.filter(id=item.id, claimed_by=self.name).update(
            claimed_by=None, claimed_until=None, last_query_at=now, queries=F("queries") + 1,
            next_query_at=now + timedelta(seconds=backoff), errors=errors, last_error=str(error)[:2000],
        )
        self._actions.pop(item.action_id, None)  # read its action again: a stale status URL?
        logger.warning("query of %s failed (%s in a row), next try in %.1f s: %s", item.action_id, errors, backoff,
                       error)

    def _settle(self, item: Item, result: QueryResult) -> None:
        """Apply one result the moment its query returned."""
        try:
            with latency.completing("poll", detected_at=timezone.now(), polls=item.queries + 1,
                                    outside_done_at=result.finished_at):
                # Its action_finished receiver deletes the tracking row in the same transaction.
                wf_services.complete_action(item.action_id, result.state, result.output)
        except GustError as exc:  # completed by a callback meanwhile: the first result won
            logger.info("poll result for %s not applied: %s", item.action_id, exc.message)
            TrackedAction.objects.filter(id=item.id).delete()
        self._actions.pop(item.action_id, None)

    # -- queries --

    def _jobs(self, items: list[Item]) -> list[tuple[Callable | None, list[Item]]]:
        """One job per item, except for query functions marked ``many``, which
        answer many actions of their class in one call; such a batch is split
        into about one chunk per pool thread."""
        jobs, batches, fns = [], {}, {}
        for item in items:
            name = item.action.name if item.action else None
            if name not in fns:  # looked up once per action class and cycle, not per item
                fns[name] = self.queries(name) if name else None
            fn = fns[name]
            if fn is not None and getattr(fn, "many", False):
                batches.setdefault(fn, []).append(item)
            else:
                jobs.append((fn, [item]))
        for fn, batch in batches.items():
            size = max(MIN_CHUNK, math.ceil(len(batch) / self.pool_size))
            jobs.extend((fn, batch[k:k + size]) for k in range(0, len(batch), size))
        return jobs

    def _run_job(self, job) -> Outcome:
        fn, items = job
        out = Outcome()
        try:
            if fn is None:
                what = items[0].action.name if items[0].action else f"action {items[0].action_id} (gone)"
                raise LookupError(f"no query function for {what}")
            if getattr(fn, "many", False):
                answers = fn([i.action for i in items])
                results = [(i, answers.get(i.action_id, QueryResult.running())) for i in items]
            else:
                results = [(items[0], fn(items[0].action))]
        except Exception as exc:  # any failure of an outside query is retried later
            out.errors.extend((i, exc) for i in items)
            return out
        for item, answer in results:
            if isinstance(answer, Exception):
                out.errors.append((item, answer))
            elif not answer.done:
                out.running.append(item)
            else:
                try:
                    self._settle(item, answer)
                    out.completed += 1
                except Exception as exc:  # the database, or the engine: try again later
                    logger.exception("applying the result of %s failed", item.action_id)
                    close_old_connections()
                    out.errors.append((item, exc))
        return out

    def _run_group(self, jobs) -> list[Outcome]:
        """A pool thread's share of the cycle's jobs, one after another (one
        future per thread, not per item: handing over costs about what a poll does)."""
        return [self._run_job(job) for job in jobs]

    def _run_group_in_temporary_pool(self, jobs) -> list[Outcome]:
        try:
            return self._run_group(jobs)
        finally:
            connections.close_all()  # this short-lived thread's own connections
            http.close_all()

    def _run_jobs(self, jobs) -> list[Outcome]:
        """Each job's results are applied in its thread as soon as its query returned."""
        if self.pool_size <= 1 or len(jobs) <= 1:
            return self._run_group(jobs)
        groups = [jobs[k::self.pool_size] for k in range(min(self.pool_size, len(jobs)))]
        if self._pool is not None:
            futures = [self._pool.submit(self._run_group, group) for group in groups]
            return [o for f in as_completed(futures) for o in f.result()]
        with ThreadPoolExecutor(self.pool_size, thread_name_prefix="gust-tracker") as pool:
            futures = [pool.submit(self._run_group_in_temporary_pool, group) for group in groups]
            return [o for f in as_completed(futures) for o in f.result()]

    # -- one cycle --

    def run_once(self, flush: bool = True, periodic: bool = True) -> dict:
        """Query every due item once; returns counts of this cycle. ``flush``:
        write the still-running items now (the loop leaves them for the next
        claim's transaction); ``periodic``: run the periodic hooks too."""
        now = self.clock()
        items = self.claim(now) if self._worth_claiming(now) else []
        counts = {"claimed": len(items), "completed": 0, "running": 0, "errors": 0}
        if items:
            for outcome in self._run_jobs(self._jobs(items)):
                counts["completed"] += outcome.completed
                counts["running"] += len(outcome.running)
                counts["errors"] += len(outcome.errors)
                self._pending_running.extend(outcome.running)
                self._pending_errors.extend(outcome.errors)
            self._pending_claimed_at, self._pending_answered_by = now, self.clock()
        if flush and (self._pending_running or self._pending_errors):
            with transaction.atomic():
                self._flush(self.clock())
        self.counters["queries"] += counts["claimed"]
        self.counters["completions"] += counts["completed"]
        self.counters["errors"] += counts["errors"]
        if periodic:
            self._run_periodic()
            self._last_periodic = time.monotonic()
        return counts

    def _worth_claiming(self, now) -> bool:
        """A write transaction only when there is something to write or claim:
        on SQLite every BEGIN IMMEDIATE queues behind the web's and the worker's."""
        if self._pending_running or self._pending_errors or time.monotonic() - self._last_beat >= BEAT_EVERY:
            return True
        due_by = now + timedelta(seconds=self.lookahead())
        return TrackedAction.objects.filter(next_query_at__lte=due_by).filter(
            Q(claimed_until__isnull=True) | Q(claimed_until__lt=now)).exists()

    def _run_periodic(self) -> None:
        """Call each periodic hook. A hook may return an object with an
        ``errors`` count (items it logged and skipped, as the overdue sweep
        does); those and a hook that raises add to ``periodic_errors``."""
        hooks = [
            "tracker.services.process_inbox",
            "workflows.services.fail_overdue_actions",
            "workflows.services.continue_stalled",
            "workflows.dispatch.redispatch_unclaimed",
            "webhooks.notifier.retry_due",
            "tracker.latency.roll_up",
            *conf.get("PERIODIC"),
        ]
        for path in hooks:
            try:
                # A result a sweep sets (an overdue action failed) did not come back from outside.
                with latency.completing("timeout", detected_at=timezone.now()):
                    outcome = import_string(path)()
            except Exception:  # one broken hook must not stop polling
                logger.exception("periodic hook %s failed", path)
                self.counters["periodic_errors"] += 1
            else:
                self.counters["periodic_errors"] += getattr(outcome, "errors", 0)

    # -- lifecycle --

    def next_due_in(self) -> float:
        """Seconds until the next item is due: its own pending items (not
        written back yet) or a claimable row; at most one interval."""
        now = self.clock()
        nexts = []
        for item in self._pending_running:
            nexts.append(self._next_due_of(item, item.query_interval or self.query_interval, self._pending_answered_by))
        row = (TrackedAction.objects.filter(Q(claimed_until__isnull=True) | Q(claimed_until__lt=now))
               .order_by("next_query_at").values_list("next_query_at", flat=True).first())
        if row is not None:
            nexts.append(row)
        if not nexts:
            return self.query_interval
        return max(0.0, min(self.query_interval, (min(nexts) - now).total_seconds()))

    def _wait(self, claimed: int) -> float:
        """How long the loop sleeps: until the next item is due, at most until
        the next beat; at least the lookahead (one wake-up for items due close
        together) unless items are due already: a tracker behind catches up
        at once."""
        if claimed >= conf.get("BATCH"):
            return 0.0
        until_beat = max(0.0, BEAT_EVERY - (time.monotonic() - self._last_beat))
        due_in = self.next_due_in()
        if due_in <= 0:
            return 0.0
        return max(self.lookahead(), min(due_in, until_beat))

    def _beat(self, stopped: bool = False) -> None:
        now = self.clock()
        TrackerProcess.objects.update_or_create(
            name=self.name,
            defaults=dict(last_seen=now, query_interval=self.query_interval, thread_pool_size=self.pool_size,
                          stopped_at=now if stopped else None, **self.counters),
            create_defaults=dict(started_at=now, last_seen=now, query_interval=self.query_interval,
                                 thread_pool_size=self.pool_size, **self.counters),
        )
        self._last_beat = time.monotonic()

    def start(self) -> None:
        self._pool = ThreadPoolExecutor(self.pool_size, thread_name_prefix="gust-tracker")
        self._beat()
        pending = TrackedAction.objects.count()
        logger.info("tracker %s started: %d tracked action(s) reloaded from the database, "
                    "QUERY_INTERVAL=%s s, THREAD_POOL_SIZE=%s", self.name, pending, self.query_interval, self.pool_size)
        self._thread = threading.Thread(target=self._loop, name="gust-tracker-loop", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                periodic = time.monotonic() - self._last_periodic >= PERIODIC_EVERY
                counts = self.run_once(flush=False, periodic=periodic)
                wait = self._wait(counts["claimed"])
            except Exception:
                logger.exception("tracker cycle failed; retrying")
                close_old_connections()
                wait = self.query_interval
            if wait > 0:
                self._stop.wait(wait)
        try:
            with transaction.atomic():
                self._flush(self.clock())
        except Exception:
            logger.exception("writing the last cycle's results failed; their leases will expire")
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
