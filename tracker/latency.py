"""How each async action's result came back, and how long it took — on live
traffic, not only in a benchmark.

- Every door that hands a result to ``workflows.services.complete_action``
  says how it got it with ``workflows.completions.completing(mode, door=...)``
  (here as ``completing``): the REST API (``by hand``, or ``callback`` for an
  action that asked its outside system to call back), the signed callback
  URL, Mistral notifications, the early-callback inbox, the tracker's polls,
  its overdue sweep and the timer loop (``timeout``), the operator page
  (``by hand``), the approval pages, API and expiry (``approval``) and the
  worker (``failed to start``). The ``action_finished`` receiver
  (``record``) writes one ``Completion`` row in the completing transaction,
  with the SQL statements the door spent and, for a poll, the interval.
- ``roll_up()`` (a periodic hook of the tracker) folds raw rows into
  per-minute and per-hour ``CompletionBucket`` rows with log-scale
  histograms of "outside done → detected" and "detected → next task
  running"; the next task's start is read then, from its ``started_at``,
  off the hot path. Kept (``COMPLETIONS``): raw rows ``RAW_DAYS`` (2),
  minute buckets ``MINUTE_BUCKET_DAYS`` (2), hour buckets ``BUCKET_DAYS`` (90).
  Windows up to 6 h read minute buckets, longer ones hour buckets (a 30-day
  window reads about 720 rows per mode and action name).
- ``figures(window)`` merges the buckets of a time window (and the rows not
  rolled up yet) into p50/p95/p99 per mode and per action name. Percentiles
  come from the histograms: within a bin's width (about 12%, 20 bins per
  decade) of the exact value. ``tracker.advice`` turns them into a
  recommendation per action name.
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Iterable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.db.models import Min, OuterRef, Q, QuerySet, Subquery
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from core.states import State
from tracker import advice
from tracker import conf as tracker_conf
from workflows import completions, plainsql
from workflows.conf import section

if TYPE_CHECKING:
    from tracker.models import Completion
    from workflows.models import ActionExecution

BINS_PER_DECADE = 20
MIN_MS = 0.01  # shorter durations (and negative ones, clock skew) count in the lowest bin
HOUR = 60  # CompletionBucket.span of an hour bucket, in minutes
DEFAULTS = {
    "RAW_DAYS": 2.0,
    "MINUTE_BUCKET_DAYS": 2.0,
    "BUCKET_DAYS": 90.0,
    "ROLL_UP_BATCH": 5000,
    "LIVE_RAW_MAX": 20_000,
    "ADVICE_MIN": advice.MIN_COMPLETIONS,
}
MODES = ("callback", "hybrid-callback", "poll", "hybrid-poll", "by hand", "approval", "timeout", "failed to start")
APPROVAL_ACTIONS = ("gust.approval",)
OUTSIDE_SKEW = timedelta(days=30)  # an outside finished_at further than this from "detected" is not believed


conf = section(tracker_conf.get, "COMPLETIONS", DEFAULTS)


# --- where a result came from --------------------------------------------------

# The context itself lives in workflows.completions (the REST API and the
# timer loop are doors too); these names stay for the tracker's callers.
Source = completions.Source
completing = completions.completing
current = completions.current


def outside_time(value: Any, detected_at: datetime) -> datetime | None:
    """The outside system's ``finished_at``: ISO 8601 (naive = UTC) or epoch
    seconds; None when absent, unreadable or implausibly far from ``detected_at``."""
    when = None
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)) and math.isfinite(value):
        try:
            when = datetime.fromtimestamp(value, tz=UTC)
        except (OverflowError, OSError, ValueError):
            return None
    elif isinstance(value, str) and len(value) <= 64:
        text = value.strip()
        try:
            when = parse_datetime(text.replace("Z", "+00:00"))
        except ValueError:
            return None
        if when is None:
            try:
                number = float(text)  # epoch seconds sent as text
            except ValueError:
                return None
            return outside_time(number, detected_at) if math.isfinite(number) else None
        if timezone.is_naive(when):
            when = when.replace(tzinfo=UTC)
    if when is None or abs(when - detected_at) > OUTSIDE_SKEW:
        return None
    return when


def sends_callback(action: ActionExecution) -> bool:
    """The action asked its outside system to call back (an async HTTP
    action tracked by ``callback`` or ``hybrid``): a result PUT through the
    REST API is then that callback, Mistral's way, not a result by hand."""
    return (action.input or {}).get("tracking") in ("callback", "hybrid")


def mode_of(action: ActionExecution, source: Source | None) -> str:
    """How the result came back: the door's mode, with ``hybrid-`` for a
    callback or poll of a hybrid action; with no door named, an approval's
    result is an approval, anything else by hand."""
    if source is None:
        return "approval" if action.name in APPROVAL_ACTIONS else "by hand"
    mode = source.mode
    if mode == "by hand" and source.door == "api" and sends_callback(action):
        mode = "callback"
    if mode in ("callback", "poll") and (action.input or {}).get("tracking") == "hybrid":
        return f"hybrid-{mode}"
    return mode


def record(sender: object, action: ActionExecution, **kwargs: object) -> None:
    """Receiver of ``action_finished``: one Completion row per async action
    that completed (a cancelled one did not come back), in the completing
    transaction. Its ``statements`` are those counted by the door's
    ``completing`` block up to here (the door's reads, the lock, the
    engine's writes); the execution row's save, this row and the commit follow."""
    if action.is_sync or action.state == State.CANCELLED:
        return
    from tracker.models import Completion

    source = current()
    now = timezone.now()
    detected = source.detected_at if source else now
    row = Completion(
        action_id=action.id,
        action_name=action.name[:255],
        execution_id=action.workflow_execution_id,
        mode=mode_of(action, source),
        door=source.door if source else "other",
        detected_at=detected,
        recorded_at=now,
        outside_done_at=outside_time(source.outside_done_at, detected) if source else None,
        polls=source.polls if source else None,
        interval=_interval(action) if source and source.mode == "poll" else None,
        statements=source.take_statements() if source else None,
    )
    plainsql.insert_rows(Completion, [row])  # the ORM's INSERT compiler was a tenth of a callback


def _interval(action: ActionExecution) -> float | None:
    """A polled action's query interval: its own ``query_interval``, else
    this process's (polls are recorded in the tracker that made them)."""
    value = (action.input or {}).get("query_interval")
    try:
        seconds = float(value) if value is not None else float(tracker_conf.get("QUERY_INTERVAL"))
    except (TypeError, ValueError):
        return None
    return seconds if math.isfinite(seconds) and seconds > 0 else None


# --- histograms -----------------------------------------------------------------


def bin_of(ms: float) -> int:
    return math.floor(math.log10(max(ms, MIN_MS)) * BINS_PER_DECADE)


def bin_edges(b: int) -> tuple[float, float]:
    return 10 ** (b / BINS_PER_DECADE), 10 ** ((b + 1) / BINS_PER_DECADE)


def add(hist: dict, ms: float | None, n: int = 1) -> None:
    if ms is not None:
        key = str(bin_of(ms))
        hist[key] = hist.get(key, 0) + n


def merge(into: dict, other: dict) -> None:
    for k, n in other.items():
        into[k] = into.get(k, 0) + n


def percentile(hist: dict, q: float) -> float | None:
    """The q-th percentile (0-100) of a histogram, interpolated geometrically in its bin."""
    total = sum(hist.values())
    if not total:
        return None
    rank = q / 100 * total
    seen = 0
    for b in sorted(int(k) for k in hist):
        n = hist[str(b)]
        if seen + n >= rank:
            lo, hi = bin_edges(b)
            frac = (rank - seen) / n if n else 0.0
            return round(lo * (hi / lo) ** frac, 3)
        seen += n
    return round(bin_edges(max(int(k) for k in hist))[1], 3)


def _ms(later: datetime | None, earlier: datetime | None) -> float | None:
    if later is None or earlier is None:
        return None
    return (later - earlier).total_seconds() * 1000.0


# --- rolling up -----------------------------------------------------------------


def _with_next_start(qs: QuerySet[Completion]) -> QuerySet[Completion]:
    """Annotate each Completion with the first task of its execution that
    started in its completing transaction (between detection and recording)."""
    from workflows.models import TaskExecution

    first = (
        TaskExecution.objects.filter(
            workflow_execution_id=OuterRef("execution_id"),
            started_at__gte=OuterRef("detected_at"),
            started_at__lte=OuterRef("recorded_at"),
        )
        .order_by()
        .values("workflow_execution_id")
        .annotate(m=Min("started_at"))
        .values("m")[:1]
    )
    return qs.annotate(next_started_at=Subquery(first))


def _fold(rows: Iterable[Completion], into: dict) -> None:
    """Add completion rows (with next_started_at) to {(minute, mode, name): figures}."""
    for c in rows:
        key = (c.detected_at.replace(second=0, microsecond=0), c.mode, c.action_name)
        agg = into.get(key)
        if agg is None:
            agg = into[key] = _empty()
        agg["count"] += 1
        if c.polls is not None:
            agg["polls"] += c.polls
            agg["polled"] += 1
        if c.interval is not None and c.polls is not None:
            agg["interval_sum"] += c.interval
        if c.statements is not None:
            agg["statements"] += c.statements
            agg["counted"] += 1
        add(agg["detect_hist"], _ms(c.detected_at, c.outside_done_at))
        add(agg["next_hist"], _ms(c.next_started_at, c.detected_at))


def roll_up(now: datetime | None = None) -> int:
    """Fold up to ROLL_UP_BATCH raw completions into their minute buckets and
    drop rows past their retention. Returns how many rows were folded."""
    from tracker.models import Completion, CompletionBucket

    now = now or timezone.now()
    with transaction.atomic():
        # A second's margin: the completing transaction of a row may still be
        # open. Locked, so two trackers never fold the same rows.
        pending = Completion.objects.filter(rolled_up=False, recorded_at__lt=now - timedelta(seconds=1))
        if not pending.exists():
            rows = []
        else:
            rows = list(
                _with_next_start(pending.order_by("id").select_for_update(skip_locked=True, of=("self",)))[
                    : conf("ROLL_UP_BATCH")
                ]
            )
        if rows:
            folded: dict = {}
            _fold(rows, folded)
            hours: dict = {}
            for (minute, mode, name), agg in folded.items():
                _merge_group(hours, (minute.replace(minute=0), mode, name), agg)
            for span, groups in ((1, folded), (HOUR, hours)):
                for (start, mode, name), agg in groups.items():
                    bucket, _ = CompletionBucket.objects.select_for_update().get_or_create(
                        minute=start, span=span, mode=mode, action_name=name
                    )
                    for k in COUNTERS:
                        setattr(bucket, k, getattr(bucket, k) + agg[k])
                    merge(bucket.detect_hist, agg["detect_hist"])
                    merge(bucket.next_hist, agg["next_hist"])
                    bucket.save()
            Completion.objects.filter(id__in=[c.id for c in rows]).update(rolled_up=True)
    _prune(now)
    return len(rows)


def _prune(now: datetime) -> None:
    from tracker.models import Completion, CompletionBucket

    raw_before = now - timedelta(days=conf("RAW_DAYS"))
    old = list(
        Completion.objects.filter(rolled_up=True, detected_at__lt=raw_before).values_list("id", flat=True)[:5000]
    )
    if old:
        Completion.objects.filter(id__in=old).delete()
    CompletionBucket.objects.filter(span=1, minute__lt=now - timedelta(days=conf("MINUTE_BUCKET_DAYS"))).delete()
    CompletionBucket.objects.filter(minute__lt=now - timedelta(days=conf("BUCKET_DAYS"))).delete()


# --- the live figures -------------------------------------------------------------


LONG_WINDOW = timedelta(hours=6)  # longer windows read hour buckets
WINDOWS = {
    "15m": timedelta(minutes=15),
    "1h": timedelta(hours=1),
    "6h": timedelta(hours=6),
    "24h": timedelta(days=1),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
}


def figures(window: str = "24h", now: datetime | None = None) -> dict:
    """p50/p95/p99 of "outside done → detected" and "detected → next task
    running", polls per completion, per mode and per (mode, action name),
    and each mode's histogram, over the last ``window``."""
    from tracker.models import Completion, CompletionBucket

    now = now or timezone.now()
    since = now - WINDOWS[window]
    first_minute = since.replace(second=0, microsecond=0)
    if WINDOWS[window] > LONG_WINDOW:
        # Whole hours from the hour buckets, the minutes before the first whole hour from minute buckets.
        cut = since.replace(minute=0, second=0, microsecond=0)
        cut = cut if cut == since else cut + timedelta(hours=1)
        which = Q(span=HOUR, minute__gte=cut) | Q(span=1, minute__gte=first_minute, minute__lt=cut)
    else:
        which = Q(span=1, minute__gte=first_minute)
    groups: dict = {}
    fields = ("mode", "action_name", *COUNTERS, "detect_hist", "next_hist")
    for values in CompletionBucket.objects.filter(which).values_list(*fields).iterator(chunk_size=5000):
        b = dict(zip(fields, values, strict=True))
        _merge_group(groups, (b["mode"], b["action_name"]), b)
    fresh: dict = {}
    raw = _with_next_start(Completion.objects.filter(rolled_up=False, detected_at__gte=since).order_by("-id"))[
        : conf("LIVE_RAW_MAX")
    ]
    _fold(raw, fresh)
    for (_, mode, name), agg in fresh.items():
        _merge_group(groups, (mode, name), agg)
    by_mode: dict = {}
    for (mode, _), g in groups.items():
        _merge_group(by_mode, mode, g)
    order = {m: i for i, m in enumerate(MODES)}
    modes = [_row(mode, None, g) for mode, g in sorted(by_mode.items(), key=lambda kv: order.get(kv[0], 99))]
    actions = [
        _row(mode, name, g)
        for (mode, name), g in sorted(groups.items(), key=lambda kv: (order.get(kv[0][0], 99), kv[0][1]))
    ]
    return {
        "window": window,
        "since": since,
        "now": now,
        "total": sum(g["count"] for g in by_mode.values()),
        "modes": modes,
        "actions": actions,
        "histograms": _histograms(by_mode, order),
        "advice": advice.advise(actions, min_completions=int(conf("ADVICE_MIN"))),
    }


COUNTERS = ("count", "polls", "polled", "interval_sum", "statements", "counted")


def _empty() -> dict:
    return {**dict.fromkeys(COUNTERS, 0), "detect_hist": {}, "next_hist": {}}


def _merge_group(groups: dict, key: Hashable, more: dict) -> None:
    g = groups.get(key)
    if g is None:
        g = groups[key] = _empty()
    for k in COUNTERS:
        g[k] += more[k]
    merge(g["detect_hist"], more["detect_hist"])
    merge(g["next_hist"], more["next_hist"])


def _shown(ms: float | None) -> float | None:
    """As many digits as a bin's ~12% width makes meaningful."""
    if ms is None:
        return None
    return round(ms) if ms >= 100 else round(ms, 1) if ms >= 1 else round(ms, 3)


def _row(mode: str, name: str | None, g: dict) -> dict:
    def pcts(h: dict) -> dict:
        return {"n": sum(h.values()), **{f"p{q}": _shown(percentile(h, q)) for q in (50, 95, 99)}}

    return {
        "mode": mode,
        "action_name": name,
        "count": g["count"],
        "polls_per_completion": round(g["polls"] / g["polled"], 2) if g["polled"] else None,
        "statements_per_completion": round(g["statements"] / g["counted"], 1) if g["counted"] else None,
        "interval": round(g["interval_sum"] / g["polled"], 3) if g["polled"] and g["interval_sum"] else None,
        "detect": pcts(g["detect_hist"]),
        "next": pcts(g["next_hist"]),
    }


def _histograms(by_mode: dict, order: dict) -> dict:
    """Per mode, counts per bin of both durations over the bins any mode uses
    (the chart's x axis), for the static script that draws them."""
    keys = sorted({int(k) for g in by_mode.values() for h in (g["detect_hist"], g["next_hist"]) for k in h})
    if not keys:
        return {"bins": [], "modes": []}
    bins = list(range(keys[0], keys[-1] + 1))
    return {
        "bins": [round(bin_edges(b)[0], 4) for b in bins] + [round(bin_edges(bins[-1])[1], 4)],
        "modes": [
            {
                "mode": mode,
                "detect": [g["detect_hist"].get(str(b), 0) for b in bins],
                "next": [g["next_hist"].get(str(b), 0) for b in bins],
            }
            for mode, g in sorted(by_mode.items(), key=lambda kv: order.get(kv[0], 99))
        ],
    }


def by_mode_for_page(window: str) -> dict:
    """figures() with default_window fallback for a page's ?window= value."""
    return figures(window if window in WINDOWS else "24h")
