"""The results tracker: StackStorm's resultstracker, done right (seed 001).

- Work lives in the database (``TrackedAction``); a restarted tracker finds
  it there. A tracker **leases** the rows it polls (``claimed_by``,
  ``claimed_until``) and keeps their schedule in memory (a heap of due
  times), so polling a still-running item costs no SQL at all. The lease
  lives on through the tracker's heartbeat (``TrackerProcess.last_seen``,
  every second), not through row writes. The database hears from a tracker
  when it claims rows, when a query fails (the error and the back-off are
  visible at once), when an item finishes (the completion itself), and when
  rows are released: then each row's next due time and query count are
  written back.
- Any number of trackers share the rows: a claim is one ``UPDATE … WHERE id
  IN (SELECT … LIMIT n [FOR UPDATE SKIP LOCKED]) RETURNING`` of due rows
  nobody holds (SQLite's IMMEDIATE transactions serialize claims). With
  other trackers alive a tracker takes at most its share of the scheduled
  rows (new rows are taken by whoever sees them first) and releases what it
  holds beyond its share at a renewal, so a tracker that joins gets its part
  within a renewal (every few seconds). A tracker that dies stops beating;
  LEASE seconds later the others take its rows over. ``stop()`` releases
  the lease.
- The first query time of a new row is set here, from this tracker's
  QUERY_INTERVAL / HYBRID_GRACE: its creation time + that delay. Later ones
  stay on the item's grid (previous due time + interval), so a cycle's
  duration does not stretch the period; an item polled so late that the
  grid would bring its next query within half an interval goes one interval
  after its answer instead (never polled twice in one interval).
- Items due close together are queried in one wake-up (up to a tenth of an
  interval early, never late). Queries run in a pool of at most
  ``THREAD_POOL_SIZE`` threads, outside any transaction; a wake-up uses as
  many threads as its queries need (one thread does a few dozen fast GETs in
  a few milliseconds; more threads only contend for the GIL); a ``many``
  batch is split across the pool. Each result is applied, through the same
  service as a callback, as soon as its query returns.
- A query error backs off exponentially and retries; nothing is dropped.
- ``run_once()`` is one synchronous cycle for tests (with ``periodic``: the
  periodic hooks too); ``start()``/``stop()`` run it in a loop, the periodic
  hooks in a thread of their own so they never delay a poll, and ``stop()``
  finishes in-flight queries and releases the lease (graceful shutdown,
  seed 004).
"""

from __future__ import annotations

import heapq
import json
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
from datetime import UTC, datetime

from django.db import DatabaseError, close_old_connections, connection, connections, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.module_loading import import_string

from core.states import State
from tracker import conf, http, latency
from tracker.models import TrackedAction, TrackerProcess
from tracker.queries import ActionInfo, QueryResult, query_for
from workflows import services as wf_services
from workflows.errors import GustError
from workflows.models import ActionExecution

logger = logging.getLogger("gust.tracker")

MIN_CHUNK = 200  # a many-batch is split across the pool, but not into requests smaller than this
PERIODIC_EVERY = 1.0  # seconds between two looks at which periodic hooks are due, in the loop
# The built-in periodic hooks and how often the loop calls each (seconds): as
# often as what they find must be acted on, no more: an idle tracker spent
# most of its CPU on them (bench/README.md, "the tracker at scale"). The
# configured ones (TRACKER["PERIODIC"]: approval reminders and expiry,
# retention, whose times are minutes) every CONFIGURED_EVERY. run_once(periodic=True)
# calls them all.
HOOKS = (
    ("tracker.services.process_inbox", 1.0),  # early callbacks whose action now exists
    ("workflows.services.fail_overdue_actions", 2.0),  # deadlines, minutes to days
    ("workflows.services.continue_stalled", 2.0),  # a continuation whose job was lost
    ("workflows.dispatch.redispatch_unclaimed", 10.0),  # jobs unclaimed for WORKER_REDISPATCH_AFTER (300 s)
    ("webhooks.notifier.retry_due", 2.0),  # deliveries waiting out their back-off (seconds and up)
    ("tracker.latency.roll_up", 10.0),  # latency rows into their buckets (the pages read both)
)
CONFIGURED_EVERY = 2.0
BEAT_EVERY = 1.0  # seconds between two heartbeats (TrackerProcess: liveness, counters, lag)
SHARE_SLACK = 0.1  # with other trackers alive, hold at most this much over an even share before releasing
APPLY_THREADS = 2  # threads that apply finished results in the loop, so a completion never delays a poll
LATE_GAP = 0.6  # a late item's next query comes at least this share of its interval after its answer


def _wrong_answer(answer) -> str | None:
    """What is wrong with a query function's answer, or None. A finished
    answer must say SUCCESS or ERROR: the engine would refuse anything else,
    and the action would stay RUNNING with nobody polling it."""
    if not isinstance(answer, QueryResult):
        return f"a query function answered {type(answer).__name__}, not a QueryResult"
    if answer.done and answer.state not in (State.SUCCESS, State.ERROR):
        return f"a query function answered done with state {answer.state!r}; a finished action is SUCCESS or ERROR"
    return None


@dataclass(slots=True, eq=False)
class Item:
    """One leased row: what the claim returned, and its schedule in memory."""

    id: int
    action_id: str
    query_interval: float | None
    queries: int  # status queries so far (the row's count when claimed + this tracker's)
    errors: int  # consecutive query errors
    mode: str
    due: float  # epoch seconds of its next query
    action: ActionInfo | None = None
    last_query: float | None = None  # epoch seconds of its last query, written back on release
    last_error_text: str | None = None


@dataclass
class Outcome:
    """What one query job found; the loop thread adds these up."""

    done: list = field(default_factory=list)  # (item, result, detected_at) to apply in the loop thread
    submitted: int = 0  # finished items handed to the appliers
    running: list = field(default_factory=list)
    errors: list = field(default_factory=list)  # (item, exception)


def _aware(value) -> datetime:
    """A datetime column as RETURNING gives it: aware on PostgreSQL, text on SQLite."""
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)  # SQLite's "YYYY-MM-DD HH:MM:SS[.ffffff]": C-fast
        except ValueError:
            value = parse_datetime(value)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _json(value):
    """A JSON column read with a raw cursor: text on SQLite, text or decoded on PostgreSQL."""
    return json.loads(value) if isinstance(value, (str, bytes)) else value


def _dt(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=UTC)


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
        self._appliers: ThreadPoolExecutor | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._periodic_thread: threading.Thread | None = None
        # The lease: row id -> Item, and a heap of (due, row id); an entry
        # whose item is gone or was rescheduled since is skipped when popped.
        self._held: dict[int, Item] = {}
        self._heap: list[tuple[float, int]] = []
        self._mu = threading.RLock()  # guards _held/_heap (the loop, and claim() called from elsewhere)
        self._writes: list[Item] = []  # items whose error count changed: written with the next sync
        self._share: int | None = None  # most scheduled rows to hold (None: no other tracker alive)
        self._last_claim = self._last_renew = self._last_beat = -math.inf  # clock seconds
        self._more = False  # the last claim was full: claim again at once
        self._more_expired = False  # the last take-over was full: take over more at once
        self._hooks_next: dict[str, float] = {}  # periodic hook -> when the loop calls it next (monotonic)
        self._periodic_cpu = 0.0  # CPU seconds of the periodic hooks' thread (reported with the heartbeat)
        self._query_wall = 0.0  # moving average of one query's wall time (sizes a wake-up's threads)
        self._batched_only = False  # the last wake-up's items were all asked in batches (batch_lookahead)
        # periodic_errors: periodic work that failed, a hook that raised or one
        # item of a sweep (e.g. an overdue action whose failing raised).
        self.counters = {"queries": 0, "completions": 0, "errors": 0, "periodic_errors": 0}

    # -- timing --

    def lookahead(self) -> float:
        """Items due this soon are queried in the same wake-up: one wake-up
        serves all items due close together, at the price of polling them at
        most a tenth of an interval early (never late)."""
        return min(0.25, self.query_interval / 10)

    def batch_lookahead(self) -> float:
        """The lookahead while every item due lately was asked in a batch
        (a ``many`` query function): one request answers 250 as cheaply as
        100, and a wake-up costs more CPU than the items it serves (the
        idle tracker's 2% of a core per 1,000 at 1 s), so at intervals of a
        second and more such items are taken up to a quarter interval (at
        most 0.25 s) early. Shorter intervals keep a tenth: their latency is
        the point."""
        return self.claim_every() if self.query_interval >= 1.0 else self.lookahead()

    def claim_every(self) -> float:
        """How often the loop looks for rows to claim, and how far ahead it
        claims them: a claimed row waits in memory until it is due, so a new
        one (first due an interval or a grace after it was made) is held long
        before its first query, and a quiet tracker asks the database four
        times an interval, not ten."""
        return max(self.lookahead(), min(0.25, self.query_interval / 4))

    def renew_every(self) -> float:
        return min(5.0, conf.get("LEASE") / 4)

    def _interval(self, item: Item) -> float:
        return item.query_interval or self.query_interval

    # -- the lease --

    def claim(self, now: datetime) -> list[Item]:
        """Lease due rows nobody holds (new ones, released ones) and rows
        whose lease expired, and schedule them in memory; returns the newly
        leased items. One write transaction."""
        with transaction.atomic():
            items = self._claim_rows(now.timestamp()) + self._claim_rows(now.timestamp(), expired=True)
        self._attach_actions(items)
        return items

    def _claim_rows(self, now: float, expired: bool = False) -> list[Item]:
        """Free rows due within claim_every (the partial index on unleased
        rows makes this cheap however many rows others hold), or, with
        ``expired``, rows of a tracker whose lease ran out (a scan: only at
        renewals). Within this tracker's share when others are alive."""
        qn = connection.ops.quote_name
        table = qn(TrackedAction._meta.db_table)
        adapt = connection.ops.adapt_datetimefield_value
        skip = " FOR UPDATE SKIP LOCKED" if connection.features.has_select_for_update_skip_locked else ""
        batch = conf.get("BATCH")
        if expired:
            processes = qn(TrackerProcess._meta.db_table)
            where = (
                f"claimed_by IS NOT NULL AND claimed_until < %s AND claimed_by NOT IN ("
                f"SELECT name FROM {processes} WHERE stopped_at IS NULL AND last_seen >= %s)"
            )
            params = [adapt(_dt(now)), adapt(_dt(now - conf.get("LEASE")))]
        else:
            where, params = "claimed_by IS NULL AND next_query_at <= %s", [adapt(_dt(now + self.claim_every()))]
        with self._mu:
            held = len(self._held)
        if self._share is not None:
            room = self._share - held
            if room <= 0:  # a full share: new rows only (nobody else has seen them either)
                where += " AND scheduled = %s"
                params.append(False)
            else:
                batch = min(batch, room)
        sql = (
            f"UPDATE {table} SET claimed_by = %s, claimed_until = %s WHERE id IN ("
            f"SELECT id FROM {table} WHERE {where} ORDER BY next_query_at LIMIT %s{skip}) "
            f"RETURNING id, action_id, query_interval, queries, errors, mode, next_query_at, scheduled, "
            f"created_at, grace"
        )
        until = _dt(now + conf.get("LEASE"))
        with connection.cursor() as cursor:
            cursor.execute(sql, [self.name, adapt(until), *params, batch])
            rows = cursor.fetchall()
        if expired:
            self._more_expired = len(rows) >= batch
        else:
            self._more = len(rows) >= batch
        items = []
        for row_id, action_id, interval, queries, errors, mode, next_at, scheduled, created_at, grace in rows:
            if scheduled:
                due = _aware(next_at).timestamp()
            else:
                # New: its first query one interval (hybrid: the grace) after
                # it was created, by this tracker's settings.
                if mode == "hybrid":
                    delay = grace if grace is not None else conf.get("HYBRID_GRACE")
                else:
                    delay = interval or self.query_interval
                due = _aware(created_at).timestamp() + delay
            items.append(Item(row_id, action_id, interval, queries, errors, mode, due))
        with self._mu:
            for item in items:
                self._held[item.id] = item  # a re-armed row (track_result) replaces its old entry
                heapq.heappush(self._heap, (item.due, item.id))
        if expired and items:
            logger.info("tracker %s took over %d row(s) whose lease expired", self.name, len(items))
        return items

    def _renew(self, now: float) -> None:
        """Forget rows that are no longer ours (a callback completed and
        deleted them, ``track_result`` re-armed them), and keep to this
        tracker's share when others are alive. The lease itself lives on
        through the heartbeat: a row is another tracker's to take only once
        its ``claimed_until`` passed *and* its tracker's heartbeat is older
        than LEASE (``_claim_rows(expired=True)``), so keeping 100,000 rows
        costs no row writes (rewriting them every few seconds took seconds
        on PostgreSQL: a new row version each)."""
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT COUNT(*) FROM {connection.ops.quote_name(TrackedAction._meta.db_table)} WHERE claimed_by = %s",
                [self.name],
            )
            renewed = cursor.fetchone()[0]
        with self._mu:
            held = len(self._held)
        if renewed != held:
            mine = set(TrackedAction.objects.filter(claimed_by=self.name).values_list("id", flat=True))
            with self._mu:
                for row_id in [i for i in self._held if i not in mine]:
                    del self._held[row_id]
        alive_after = _dt(now - max(3 * self.query_interval, 10.0))
        others = (
            TrackerProcess.objects.filter(stopped_at__isnull=True, last_seen__gte=alive_after)
            .exclude(name=self.name)
            .count()
        )
        if not others:
            self._share = None
            return
        self._share = math.ceil(TrackedAction.objects.count() / (others + 1))
        with self._mu:
            if len(self._held) <= self._share * (1 + SHARE_SLACK) + 10:
                return
            excess = len(self._held) - self._share  # back to an even share: hysteresis, not a release per renewal
            # The ones due last: the others have the most time to claim them.
            give = sorted(self._held.values(), key=lambda i: i.due)[-excess:]
            for item in give:
                del self._held[item.id]
        self._write_back(give)
        logger.info("tracker %s released %d row(s) to share with %d other tracker(s)", self.name, len(give), others)

    def _write_back(self, items: list[Item]) -> None:
        """Release rows, writing each one's schedule and query count."""
        if not items:
            return
        adapt = connection.ops.adapt_datetimefield_value
        table = connection.ops.quote_name(TrackedAction._meta.db_table)
        sql = (
            f"UPDATE {table} SET claimed_by = NULL, claimed_until = NULL, scheduled = %s, next_query_at = %s, "
            f"queries = %s, last_query_at = COALESCE(%s, last_query_at) WHERE id = %s AND claimed_by = %s"
        )
        rows = [
            (True, adapt(_dt(i.due)), i.queries, adapt(_dt(i.last_query)) if i.last_query else None, i.id, self.name)
            for i in items
        ]
        with connection.cursor() as cursor:
            for start in range(0, len(rows), 5000):
                cursor.executemany(sql, rows[start : start + 5000])

    def release(self) -> int:
        """Give every held row back, its schedule written; returns how many."""
        with self._mu:
            items = list(self._held.values())
            self._held.clear()
            self._heap.clear()
        with transaction.atomic():
            self._write_back(items)
            TrackedAction.objects.filter(claimed_by=self.name).update(claimed_by=None, claimed_until=None)
        return len(items)

    def schedule(self) -> dict[str, datetime]:
        """{action id: next query time} of the held rows (for tests and the shell)."""
        with self._mu:
            return {i.action_id: _dt(i.due) for i in self._held.values()}

    def _write_errors(self) -> None:
        """The error counts that changed since the last sync (a failed query,
        or the first answer after failures), with the back-off's due time."""
        with self._mu:
            items, self._writes = self._writes, []
        if not items:
            return
        adapt = connection.ops.adapt_datetimefield_value
        table = connection.ops.quote_name(TrackedAction._meta.db_table)
        with connection.cursor() as cursor:
            cursor.executemany(
                f"UPDATE {table} SET errors = %s, last_error = COALESCE(%s, last_error), queries = %s, "
                f"last_query_at = %s, next_query_at = %s WHERE id = %s AND claimed_by = %s",
                [
                    (
                        i.errors,
                        i.last_error_text,
                        i.queries,
                        adapt(_dt(i.last_query)) if i.last_query else None,
                        adapt(_dt(i.due)),
                        i.id,
                        self.name,
                    )
                    for i in items
                ],
            )

    def _worth_claiming(self, now: float) -> bool:
        """A write transaction only when there is something to claim: on
        SQLite every BEGIN IMMEDIATE queues behind the web's and the worker's."""
        if self._more:
            return True
        # Raw SQL: it runs ten times a second, and the ORM would cost ten
        # times what the query does.
        table = connection.ops.quote_name(TrackedAction._meta.db_table)
        with connection.cursor() as cursor:
            cursor.execute(
                f"SELECT 1 FROM {table} WHERE claimed_by IS NULL AND next_query_at <= %s LIMIT 1",
                [connection.ops.adapt_datetimefield_value(_dt(now + self.claim_every()))],
            )
            return cursor.fetchone() is not None

    def sync(self, now: float) -> list[Item]:
        """The tracker's own database work, when due: pending error writes,
        the lease renewal, a claim, the heartbeat; one write transaction (on
        SQLite a tracker queues once on the single writer). Returns the newly
        claimed items."""
        check = self._more or now - self._last_claim >= self.claim_every()
        claim = check and self._worth_claiming(now)
        if check:
            self._last_claim = now
        renew = now - self._last_renew >= self.renew_every()
        beat = now - self._last_beat >= BEAT_EVERY
        take_over = renew or self._more_expired
        if not (claim or take_over or beat or self._writes):
            return []
        items = []
        with transaction.atomic():
            self._write_errors()
            if renew:
                self._renew(now)
                self._last_renew = now
            if take_over:  # a dead tracker's rows: BATCH at a time, at once until none are left
                items = self._claim_rows(now, expired=True)
            if claim:
                items += self._claim_rows(now)
            if beat:
                self._beat(now)
        self._attach_actions(items)
        return items

    def _attach_actions(self, items: list[Item]) -> None:
        """The query fields of each item's action, read narrowly (raw SQL: a
        claim of 1,000 new rows reads 1,000 actions); kept with the item once
        the action was handed over (they no longer change)."""
        missing = {i.action_id: i for i in items if i.action is None or not i.action.handed_over}
        if not missing:
            return
        ids = list(missing)
        qn = connection.ops.quote_name
        table = qn(ActionExecution._meta.db_table)
        with connection.cursor() as cursor:
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                cursor.execute(
                    f"SELECT id, name, input, runtime_context, attempt FROM {table} "
                    f"WHERE id IN ({', '.join(['%s'] * len(chunk))})",
                    chunk,
                )
                for aid, name, inp, ctx, attempt in cursor.fetchall():
                    aid = str(aid)
                    missing[aid].action = ActionInfo(aid, name, _json(inp), _json(ctx), attempt)

    # -- the schedule --

    def _take_due(self, due_by: float) -> list[Item]:
        out = []
        with self._mu:
            heap, held = self._heap, self._held
            while heap and heap[0][0] <= due_by:
                due, row_id = heapq.heappop(heap)
                item = held.get(row_id)
                if item is not None and item.due == due:
                    out.append(item)
        return out

    def _reschedule(self, item: Item, answered: float) -> None:
        """On the item's grid (previous due time + interval), unless the item
        was polled so late (a busy cycle, a tracker behind) that this would be
        less than LATE_GAP of an interval after its answer: then that long
        after the answer. So no item is asked twice within half an interval,
        a late tracker does not poll everything twice to catch up, and one
        late poll does not push the item's whole schedule back."""
        interval = self._interval(item)
        nxt = item.due + interval
        if nxt < answered + LATE_GAP * interval:
            nxt = answered + LATE_GAP * interval
        item.due = nxt
        heapq.heappush(self._heap, (nxt, item.id))

    def _back_off(self, item: Item, error: Exception, now: float) -> None:
        interval = self._interval(item)
        item.errors += 1
        backoff = min(interval * (2**item.errors), conf.get("MAX_BACKOFF"))
        item.due = now + backoff
        item.last_error_text = str(error)[:2000]
        item.action = None  # read its action again: a stale status URL?
        heapq.heappush(self._heap, (item.due, item.id))
        self._writes.append(item)
        logger.warning(
            "query of %s failed (%s in a row), next try in %.1f s: %s", item.action_id, item.errors, backoff, error
        )

    def _first_due(self) -> float | None:
        """The earliest held item's due time (stale heap entries dropped)."""
        with self._mu:
            heap, held = self._heap, self._held
            while heap:
                due, row_id = heap[0]
                item = held.get(row_id)
                if item is not None and item.due == due:
                    return due
                heapq.heappop(heap)
        return None

    def next_due_in(self) -> float:
        """Seconds until the next held item is due (at most one interval)."""
        first = self._first_due()
        if first is None:
            return self.query_interval
        return max(0.0, min(self.query_interval, first - self.clock().timestamp()))

    def lag(self, now: float) -> float:
        """Seconds the most overdue held item is behind its schedule."""
        first = self._first_due()
        return max(0.0, now - first) if first is not None else 0.0

    # -- writing results --

    def _settle(self, item: Item, result: QueryResult, detected_at: datetime) -> None:
        """Apply one result through the engine's one door."""
        try:
            with latency.completing(
                "poll", detected_at=detected_at, polls=item.queries, outside_done_at=result.finished_at
            ):
                # Its action_finished receiver deletes the tracking row in the same transaction.
                wf_services.complete_action(item.action_id, result.state, result.output)
        except GustError as exc:  # completed by a callback meanwhile: the first result won
            logger.info("poll result for %s not applied: %s", item.action_id, exc.message)
            TrackedAction.objects.filter(id=item.id).delete()

    def _apply(self, item: Item, result: QueryResult, detected_at: datetime) -> bool:
        """Settle one finished item (it is no longer scheduled); if that
        fails (the database, the engine) it is scheduled again with a back-off."""
        try:
            self._settle(item, result, detected_at)
            return True
        except Exception as exc:
            logger.exception("applying the result of %s failed", item.action_id)
            if isinstance(exc, DatabaseError):
                close_old_connections()  # a broken connection is not reused
            with self._mu:
                self._held[item.id] = item
                self._back_off(item, exc, self.clock().timestamp())
            return False

    def _apply_in_thread(self, item: Item, result: QueryResult, detected_at: datetime) -> None:
        self.counters["completions" if self._apply(item, result, detected_at) else "errors"] += 1

    # -- queries --

    def _jobs(self, items: list[Item]) -> list[tuple[Callable | None, list[Item]]]:
        """One job per item, except for query functions marked ``many``, which
        answer many actions of their class in one call; such a batch is split
        into about one chunk per pool thread."""
        jobs, batches, fns = [], {}, {}
        for item in items:
            name = item.action.name if item.action else None
            known = fns.get(name)
            if known is None:  # looked up once per action class and cycle, not per item
                fn = self.queries(name) if name else None
                known = fns[name] = (fn, fn is not None and getattr(fn, "many", False))
            fn, many = known
            if many:
                batches.setdefault(fn, []).append(item)
            else:
                jobs.append((fn, [item]))
        for fn, batch in batches.items():
            size = max(MIN_CHUNK, math.ceil(len(batch) / self.pool_size))
            jobs.extend((fn, batch[k : k + size]) for k in range(0, len(batch), size))
        return jobs

    def _run_job(self, job, out: Outcome) -> None:
        fn, items = job
        try:
            if fn is None:
                what = items[0].action.name if items[0].action else f"action {items[0].action_id} (gone)"
                raise LookupError(f"no query function for {what}")
            if getattr(fn, "many", False):
                answers = fn([i.action for i in items])
                running = QueryResult.running()
                results = [(i, answers.get(i.action_id, running)) for i in items]
            else:
                results = [(items[0], fn(items[0].action))]
        except Exception as exc:  # any failure of an outside query is retried later
            out.errors.extend((i, exc) for i in items)
            return
        for item, answer in results:
            item.queries += 1
            if isinstance(answer, Exception):
                out.errors.append((item, answer))
            elif (wrong := _wrong_answer(answer)) is not None:  # a query function's defect: keep polling, say so
                out.errors.append((item, ValueError(wrong)))
            elif not answer.done:
                out.running.append(item)
            elif self._appliers is not None:  # the loop: applied at once in other threads, polling goes on
                with self._mu:
                    mine = self._held.pop(item.id, None) is not None  # not queried again
                if mine:
                    self._appliers.submit(self._apply_in_thread, item, answer, timezone.now())
                    out.submitted += 1
            else:
                out.done.append((item, answer, timezone.now()))

    def _run_group(self, jobs) -> Outcome:
        """A pool thread's share of the cycle's jobs, one after another (one
        future per thread, not per item: handing over costs about what a poll does)."""
        out = Outcome()
        for job in jobs:
            self._run_job(job, out)
        return out

    def _run_group_in_temporary_pool(self, jobs) -> Outcome:
        try:
            return self._run_group(jobs)
        finally:
            connections.close_all()  # this short-lived thread's own connections
            http.close_all()

    def _threads_for(self, jobs) -> int:
        """As many threads as the queries need to finish within about half a
        lookahead, from the average query time so far; at most the pool."""
        if self.pool_size <= 1 or len(jobs) <= 1:
            return 1
        if any(getattr(fn, "many", False) for fn, _ in jobs):
            return min(self.pool_size, len(jobs))
        budget = self.lookahead() / 2
        wanted = math.ceil(len(jobs) * self._query_wall / budget) if self._query_wall else self.pool_size
        return max(1, min(self.pool_size, len(jobs), wanted))

    def _run_jobs(self, jobs) -> list[Outcome]:
        """Each job's results are applied in its thread as soon as its query returned."""
        threads = self._threads_for(jobs)
        t0 = time.perf_counter()
        if threads == 1:
            outcomes = [self._run_group(jobs)]
        else:
            groups = [jobs[k::threads] for k in range(threads)]
            if self._pool is not None:
                futures = [self._pool.submit(self._run_group, group) for group in groups]
                outcomes = [f.result() for f in as_completed(futures)]
            else:
                with ThreadPoolExecutor(threads, thread_name_prefix="gust-tracker") as pool:
                    futures = [pool.submit(self._run_group_in_temporary_pool, group) for group in groups]
                    outcomes = [f.result() for f in as_completed(futures)]
        per_query = (time.perf_counter() - t0) * threads / len(jobs)
        self._query_wall = per_query if not self._query_wall else 0.8 * self._query_wall + 0.2 * per_query
        return outcomes

    # -- one cycle --

    def run_once(self, flush: bool = True, periodic: bool = True) -> dict:
        """Query every held item that is due once (claiming, renewing and
        beating first when those are due); returns counts of this cycle:
        ``claimed`` rows newly leased, ``queried`` items asked. ``flush``:
        write error counts now (the loop leaves them for its next sync);
        ``periodic``: run the periodic hooks too."""
        now = self.clock().timestamp()
        claimed = self.sync(now)
        due = self._take_due(now + (self.batch_lookahead() if self._batched_only else self.lookahead()))
        counts = {"claimed": len(claimed), "queried": len(due), "completed": 0, "running": 0, "errors": 0}
        if due:
            self._attach_actions(due)
            jobs = self._jobs(due)
            self._batched_only = all(fn is not None and getattr(fn, "many", False) for fn, _ in jobs)
            outcomes = self._run_jobs(jobs)
            answered = self.clock().timestamp()
            done = []
            with self._mu:
                for outcome in outcomes:
                    counts["completed"] += outcome.submitted
                    counts["running"] += len(outcome.running)
                    counts["errors"] += len(outcome.errors)
                    for item, result, detected_at in outcome.done:
                        if self._held.pop(item.id, None) is not None:  # not queried again
                            done.append((item, result, detected_at))
                    for item in outcome.running:
                        item.last_query = answered
                        if item.errors:
                            item.errors = 0
                            item.last_error_text = None
                            self._writes.append(item)
                        if item.id in self._held:
                            self._reschedule(item, answered)
                    for item, error in outcome.errors:
                        item.last_query = answered
                        if item.id in self._held:
                            self._back_off(item, error, answered)
            for item, result, detected_at in done:  # run_once() on its own: applied here, counted
                if self._apply(item, result, detected_at):
                    counts["completed"] += 1
                    self.counters["completions"] += 1
                else:
                    counts["errors"] += 1
        if flush and self._writes:
            with transaction.atomic():
                self._write_errors()
        self.counters["queries"] += counts["queried"]
        self.counters["errors"] += counts["errors"]
        if periodic:
            self._run_periodic()
        return counts

    def _due_hooks(self, now: float) -> list[str]:
        """The periodic hooks due at ``now`` (monotonic seconds), each then
        scheduled one period later."""
        due = []
        for path, every in (*HOOKS, *((path, CONFIGURED_EVERY) for path in conf.get("PERIODIC"))):
            if self._hooks_next.get(path, 0.0) <= now:
                due.append(path)
                self._hooks_next[path] = now + every
        return due

    def _run_periodic(self, hooks: list[str] | None = None) -> None:
        """Call the periodic hooks (all of them, or ``hooks``). A hook may
        return an object with an ``errors`` count (items it logged and
        skipped, as the overdue sweep does); those and a hook that raises
        add to ``periodic_errors``."""
        if hooks is None:
            hooks = [path for path, _ in HOOKS] + list(conf.get("PERIODIC"))
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

    def _wait(self) -> float:
        """How long the loop sleeps: until the next item is due, or the next
        look for new rows (claim_every), renewal or beat, whichever comes
        first; at once after a full claim."""
        if self._more or self._more_expired:
            return 0.0
        now = self.clock().timestamp()
        next_sync = min(
            self._last_claim + self.claim_every(), self._last_renew + self.renew_every(), self._last_beat + BEAT_EVERY
        )
        until = next_sync - now
        return max(0.0, min(self.next_due_in(), until))

    def _beat(self, now: float | None = None, stopped: bool = False) -> None:
        now = self.clock().timestamp() if now is None else now
        at = _dt(now)
        with self._mu:
            held = len(self._held)
        fields = dict(
            last_seen=at,
            query_interval=self.query_interval,
            thread_pool_size=self.pool_size,
            stopped_at=at if stopped else None,
            held=held,
            lag_s=round(self.lag(now), 3),
            periodic_cpu_s=round(self._periodic_cpu, 4),
            **self.counters,
        )
        # Raw SQL: once a second for the process's whole life (the ORM would cost ten times the query).
        qn, adapt = connection.ops.quote_name, connection.ops.adapt_datetimefield_value
        names = list(fields)
        values = [adapt(v) if isinstance(v, datetime) else v for v in fields.values()]
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {qn(TrackerProcess._meta.db_table)} SET "
                f"{', '.join(f'{qn(n)} = %s' for n in names)} WHERE name = %s",
                [*values, self.name],
            )
            updated = cursor.rowcount
        if not updated:
            fields.pop("stopped_at")
            TrackerProcess.objects.update_or_create(
                name=self.name, defaults=fields, create_defaults=dict(started_at=at, **fields)
            )
        self._last_beat = now

    def start(self) -> None:
        self._pool = ThreadPoolExecutor(self.pool_size, thread_name_prefix="gust-tracker")
        self._appliers = ThreadPoolExecutor(APPLY_THREADS, thread_name_prefix="gust-tracker-apply")
        self._beat()
        pending = TrackedAction.objects.count()
        logger.info(
            "tracker %s started: %d tracked action(s) reloaded from the database, "
            "QUERY_INTERVAL=%s s, THREAD_POOL_SIZE=%s",
            self.name,
            pending,
            self.query_interval,
            self.pool_size,
        )
        self._thread = threading.Thread(target=self._loop, name="gust-tracker-loop", daemon=True)
        self._periodic_thread = threading.Thread(target=self._periodic_loop, name="gust-tracker-periodic", daemon=True)
        self._thread.start()
        self._periodic_thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once(flush=False, periodic=False)
                wait = self._wait()
            except Exception:
                logger.exception("tracker cycle failed; retrying")
                close_old_connections()
                wait = self.lookahead()
            if wait > 0:
                self._stop.wait(wait)
        connections.close_all()

    def _periodic_loop(self) -> None:
        while not self._stop.wait(PERIODIC_EVERY):
            started = time.thread_time()
            try:
                self._run_periodic(self._due_hooks(time.monotonic()))
            except Exception:  # pragma: no cover - _run_periodic logs each hook's failure itself
                logger.exception("periodic hooks failed")
            self._periodic_cpu += time.thread_time() - started
        connections.close_all()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop claiming, let in-flight queries finish, release the lease
        (each row's schedule written back)."""
        self._stop.set()
        for thread in (self._thread, self._periodic_thread):
            if thread:
                thread.join(timeout)
        for pool in (self._pool, self._appliers):
            if pool:
                pool.shutdown(wait=True)  # in-flight queries and completions finish
        self._appliers = None
        try:
            with transaction.atomic():
                self._write_errors()
            released = self.release()
        except Exception:
            logger.exception("releasing the lease failed; it will expire")
            released = 0
        self._beat(stopped=True)
        logger.info("tracker %s stopped (released %d row(s))", self.name, released)
