"""Timeline (Gantt chart) of one execution's tasks and action executions.

Pure Python (no Django), like ``graph.py``: the view turns rows into
``Span`` values and the template only loops over ``Timeline.rows`` and
``Timeline.ticks``, whose positions are percentages of the chart's width,
so the chart needs no script and stretches with its card.

Something still running is drawn up to ``now`` (the moment the page was
rendered; the live page renders again on every change). A span shorter than
``MIN_WIDTH`` per cent is widened to it so that a 2 ms ``std.noop`` beside a
one-hour approval is still a visible, clickable bar.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

MIN_WIDTH = 0.4  # per cent of the chart
MAX_ROWS = 300  # rows drawn; the rest are counted in Timeline.hidden (a 10,000-task run stays a page)
TICKS = 6  # about this many axis labels
# Axis steps in seconds: the first that gives at most TICKS labels is used.
STEPS = (
    *(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5),  # under a second
    *(1, 2, 5, 10, 15, 30),  # seconds
    *(60, 120, 300, 600, 900, 1800),  # minutes
    *(3600, 7200, 10800, 21600, 43200, 86400, 172800, 604800),  # hours, days, a week
)


@dataclass(frozen=True)
class Span:
    """One bar: a task execution (``kind="task"``) or one of its action executions (``kind="action"``)."""

    key: str  # unique id of the row (the execution row's id)
    task: str  # name of the task it belongs to: a click shows that task
    label: str
    state: str
    start: datetime | None
    end: datetime | None  # None while running
    kind: str = "task"


@dataclass(frozen=True)
class Row:
    span: Span
    left: float  # per cent
    width: float  # per cent
    running: bool
    seconds: float  # duration (so far, when running)

    @property
    def state_class(self) -> str:
        return f"state-{self.span.state.lower()}"


@dataclass(frozen=True)
class Tick:
    left: float  # per cent
    label: str


@dataclass(frozen=True)
class Timeline:
    rows: tuple[Row, ...]
    ticks: tuple[Tick, ...]
    start: datetime | None
    seconds: float  # the whole chart's length
    hidden: int  # spans over MAX_ROWS, not drawn


def offset_label(seconds: float, step: float) -> str:
    """An axis label relative to the start: ``0``, ``+250 ms``, ``+1.5 s``, ``+2m 30s``, ``+3h``."""
    if seconds <= 0:
        return "0"
    if step < 1:
        return f"+{seconds * 1000:.0f} ms" if seconds < 1 else f"+{seconds:.{_decimals(step)}f} s"
    if seconds < 60:
        return f"+{seconds:.0f} s"
    if seconds < 3600:
        minutes, sec = divmod(round(seconds), 60)
        return f"+{minutes}m" if not sec else f"+{minutes}m {sec:02d}s"
    if seconds < 172800:
        hours, rest = divmod(round(seconds), 3600)
        return f"+{hours}h" if not rest else f"+{hours}h {rest // 60:02d}m"
    return f"+{seconds / 86400:.0f}d"


def _decimals(step: float) -> int:
    return 1 if step >= 0.1 else 2 if step >= 0.01 else 3


def _step(seconds: float) -> float:
    return next((s for s in STEPS if seconds / s <= TICKS), STEPS[-1])


def _ticks(seconds: float) -> tuple[Tick, ...]:
    step = _step(seconds)
    count = int(seconds / step + 1e-9)
    return tuple(Tick(100 * i * step / seconds, offset_label(i * step, step)) for i in range(count + 1))


def build(spans: Sequence[Span], now: datetime, start: datetime | None = None, end: datetime | None = None) -> Timeline:
    """Place ``spans`` on one time axis from ``start`` (default: the earliest
    span) to ``end`` (default: the latest end, or ``now`` while one runs).

    Spans without a start (created but never started) are left out: there is
    nothing to draw for them yet.
    """
    placed = [s for s in spans if s.start is not None]
    hidden = max(len(placed) - MAX_ROWS, 0)
    placed = placed[:MAX_ROWS]
    if not placed:
        return Timeline((), (), start, 0.0, hidden)
    ends = [s.end or now for s in placed]
    t0 = start or min(s.start for s in placed if s.start is not None)
    t1 = max([end or t0, *ends])
    seconds = max((t1 - t0).total_seconds(), 0.001)
    rows = []
    for s, e in zip(placed, ends, strict=True):
        assert s.start is not None  # filtered above; tells the type checker
        left = _percent(s.start - t0, seconds)
        width = max(_percent(e - s.start, seconds), MIN_WIDTH)
        left = min(left, 100 - width)
        rows.append(Row(s, round(left, 3), round(width, 3), s.end is None, max((e - s.start).total_seconds(), 0.0)))
    return Timeline(tuple(rows), _ticks(seconds), t0, seconds, hidden)


def _percent(delta: timedelta, seconds: float) -> float:
    return min(max(100 * delta.total_seconds() / seconds, 0.0), 100.0)
