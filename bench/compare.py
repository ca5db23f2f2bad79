"""What ``manage.py compare_completion`` compares, and how its numbers are judged.

No I/O. The modes, the benchmark workflow, the options,
latency summaries, the issue's targets and the one-screen summary live here;
``bench.driver`` runs them against real processes.
"""

from __future__ import annotations

import re
import statistics
from dataclasses import asdict, dataclass, field

from bench.runner import percentile  # numpy's default interpolation, as manage.py bench

WORKFLOW = "compare_job"

WORKFLOW_YAML = f"""\
version: '2.0'

{WORKFLOW}:
  description: One async job (gust.http_job) then a next task; compare_completion measures the gap.
  input:
    - url
    - tracking
    - job
    - query_interval: null
    - grace: null
  tasks:
    job:
      action: gust.http_job
      input:
        url: <% $.url %>
        tracking: <% $.tracking %>
        json: <% $.job %>
        query_interval: <% $.query_interval %>
        grace: <% $.grace %>
      on-success: [next]
    next:
      action: std.noop
"""


@dataclass(frozen=True)
class Mode:
    """How the job's result comes back: ``callback``; ``poll`` every
    ``interval`` s with ``pool`` query threads; or ``hybrid`` (callback, and
    polling from ``grace`` seconds after the start)."""

    tracking: str
    interval: float | None = None
    pool: int | None = None

    @property
    def name(self) -> str:
        if self.tracking == "callback":
            return "callback"
        return f"{self.tracking}-{_num(self.interval)}s-x{self.pool}"

    @property
    def tracked(self) -> bool:
        return self.tracking != "callback"

    @classmethod
    def parse(cls, text: str) -> Mode:
        """``callback``, ``poll-0.1-10`` / ``poll-0.1s-x10``, ``hybrid`` (1 s, 10) or ``hybrid-0.5-10``."""
        text = text.strip().lower()
        if text == "callback":
            return cls("callback")
        if text == "hybrid":
            return cls("hybrid", 1.0, 10)
        m = re.fullmatch(r"(poll|hybrid)-([0-9]*\.?[0-9]+)s?-x?([0-9]+)", text)
        if not m or float(m.group(2)) <= 0 or int(m.group(3)) < 1:
            raise ValueError(
                f"bad mode {text!r}: use callback, poll-<interval s>-<pool>, hybrid or hybrid-<interval>-<pool>"
            )
        return cls(m.group(1), float(m.group(2)), int(m.group(3)))


def _num(x: float | None) -> str:
    return f"{x:g}" if x is not None else "-"


DEFAULT_MODES = [
    Mode("callback"),
    *(Mode("poll", interval, pool) for interval in (0.1, 1.0, 5.0) for pool in (1, 10)),
    Mode("hybrid", 1.0, 10),
]
QUICK_MODES = [Mode("callback"), Mode("poll", 0.1, 10), Mode("hybrid", 0.2, 10)]


@dataclass
class Options:
    n: int = 200  # executions per mode
    delay: float = 2.0  # seconds from job start to job done (plus jitter)
    jitter: float | None = None  # None: the mode's polling interval (callback: delay / 2)
    rate: float = 20.0  # executions started per second
    modes: list[Mode] = field(default_factory=lambda: list(DEFAULT_MODES))
    drop_fraction: float = 0.2  # hybrid: share of callbacks the outside service never sends
    grace: float | None = None  # hybrid: seconds before polling starts (None: the mode's interval)
    batch_queries: bool = False  # modes poll through bench.queries.batch_status instead of GET status_url
    broker: str = "orm"
    extras: bool = True
    extra_interval: float = 1.0  # QUERY_INTERVAL of the idle / outstanding measurements
    extra_pool: int = 10
    idle_tracked: int = 1000
    idle_seconds: float = 30.0
    idle_per_item_seconds: float = 10.0  # the same 1,000 with one GET each (0: skip)
    outstanding: int = 10_000
    sample: int = 200  # finishing jobs measured among few / many outstanding
    create_threads: int = 4  # concurrent POST /v2/executions when creating background jobs
    warmup: int = 10
    idle_baseline_seconds: float = 5.0
    query_shapes: bool = False  # record the most frequent SQL statements per process role
    quick: bool = False
    scale: bool = False  # the tracker-at-scale measurements (bench.scale) instead of modes and extras
    scale_parts: str | None = None  # with scale: only these parts, e.g. "batch,fast" (bench.scale.Scale.run)

    @classmethod
    def quick_options(cls, **overrides) -> Options:
        base = dict(
            n=20,
            delay=0.3,
            rate=40.0,
            modes=list(QUICK_MODES),
            idle_tracked=100,
            idle_seconds=3.0,
            idle_per_item_seconds=0.0,
            outstanding=300,
            sample=10,
            warmup=4,
            idle_baseline_seconds=1.0,
            quick=True,
        )
        base.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**base)

    def jitter_for(self, mode: Mode) -> float:
        if self.jitter is not None:
            return self.jitter
        return mode.interval if mode.tracked else self.delay / 2

    def grace_for(self, mode: Mode) -> float | None:
        if mode.tracking != "hybrid":
            return None
        return self.grace if self.grace is not None else mode.interval

    def as_json(self) -> dict:
        d = asdict(self)
        d["modes"] = [m.name for m in self.modes]
        return d


# --- numbers -----------------------------------------------------------------


def latency_summary(ms: list[float]) -> dict:
    if not ms:
        return {"n": 0, "p50": None, "p95": None, "p99": None, "mean": None, "min": None, "max": None}
    return {
        "n": len(ms),
        "p50": round(percentile(ms, 50), 2),
        "p95": round(percentile(ms, 95), 2),
        "p99": round(percentile(ms, 99), 2),
        "mean": round(statistics.fmean(ms), 2),
        "min": round(min(ms), 2),
        "max": round(max(ms), 2),
    }


# --- the targets -------------------------------------------------------


def _target(name: str, value, limit, met: bool | None, unit: str, note: str = "") -> dict:
    return {"target": name, "value": value, "limit": limit, "unit": unit, "met": met, "note": note}


def evaluate(result: dict) -> list[dict]:
    """The four targets of the async-completion issue, from a result document."""
    out = []
    vendor = result.get("database", {}).get("vendor")
    for m in result.get("modes", []):
        lat = m.get("latency_ms") or {}
        if m["tracking"] == "callback" and lat.get("p50") is not None:
            note = "" if vendor == "sqlite" else f"the target is stated for SQLite; this run is {vendor}"
            out.append(
                _target(f"{m['name']}: p50 <= 15 ms (HTTP callback)", lat["p50"], 15.0, lat["p50"] <= 15.0, "ms", note)
            )
        if m["tracking"] == "poll" and lat.get("p95") is not None:
            limit = round(m["query_interval"] * 1000 * 1.1, 1)
            out.append(
                _target(f"{m['name']}: p95 <= QUERY_INTERVAL + 10%", lat["p95"], limit, lat["p95"] <= limit, "ms")
            )
    extras = result.get("extras") or {}
    idle = extras.get("idle")
    if idle and idle.get("tracker_core_per_1000") is not None:
        v = idle["tracker_core_per_1000"]
        out.append(
            _target(
                f"idle tracker <= 2% of a core per 1,000 tracked at {_num(idle['query_interval'])} s",
                round(v * 100, 2),
                2.0,
                v <= 0.02,
                "% of a core per 1,000",
                f"{idle['tracked']} tracked, batch query function",
            )
        )
    few, many = extras.get("few"), extras.get("many")
    if few and many and few["latency_ms"].get("p95") is not None and many["latency_ms"].get("p95") is not None:
        interval_ms = many["query_interval"] * 1000
        limit = round(few["latency_ms"]["p95"] + 0.1 * interval_ms, 1)
        goal = f"{many['outstanding']} outstanding: p95 not above the few-outstanding p95 + 10% of QUERY_INTERVAL"
        out.append(
            _target(
                goal,
                many["latency_ms"]["p95"],
                limit,
                many["latency_ms"]["p95"] <= limit,
                "ms",
                f"few ({few['outstanding']} outstanding): p95 {few['latency_ms']['p95']} ms",
            )
        )
    return out


# --- text --------------------------------------------------------------------


def _fmt(v, digits: int = 1) -> str:
    return "-" if v is None else f"{v:.{digits}f}"


def summary(result: dict) -> str:
    rows = [
        f"compare_completion ({result['database']['vendor']}, {result['broker']} broker, "
        f"n={result['options']['n']} per mode):",
        f"  {'mode':<16} {'p50 ms':>9} {'p95 ms':>9} {'p99 ms':>9} {'CPU s':>7} {'web':>6} {'worker':>6} "
        f"{'tracker':>7} {'SQL/compl':>9} {'commits/c':>9} {'others':>6}",
    ]
    for m in result.get("modes", []):
        lat, cpu, q = m["latency_ms"], m["cpu_s"], m["queries"]
        rows.append(
            f"  {m['name']:<16} {_fmt(lat['p50']):>9} {_fmt(lat['p95']):>9} {_fmt(lat['p99']):>9} "
            f"{cpu['total']:>7.2f} {cpu['web']:>6.2f} {cpu['worker']:>6.2f} {cpu['tracker']:>7.2f} "
            f"{_fmt(q['per_completion'])!s:>9} {_fmt(q['commits_per_completion'])!s:>9} "
            f"{_fmt((m.get('machine') or {}).get('other_cores'), 2):>6}"
        )
    extras = result.get("extras") or {}
    for key in ("few", "many"):
        e = extras.get(key)
        if e:
            lat = e["latency_ms"]
            rows.append(
                f"  poll {_num(e['query_interval'])} s, {e['outstanding']:>6} outstanding: "
                f"p50 {_fmt(lat['p50'])} p95 {_fmt(lat['p95'])} p99 {_fmt(lat['p99'])} ms; "
                f"tracker {e['tracker_core'] * 100:.1f}% of a core, "
                f"max lag {_fmt(e.get('max_lag_s'), 2)} s"
            )
    idle = extras.get("idle")
    if idle:
        rows.append(
            f"  idle tracker, {idle['tracked']} tracked at {_num(idle['query_interval'])} s: "
            f"{idle['tracker_core'] * 100:.2f}% of a core "
            f"({idle['tracker_core_per_1000'] * 100:.2f}% per 1,000), "
            f"{idle['polls_per_s']:.0f} polls/s"
        )
    per_item = extras.get("idle_per_item")
    if per_item:
        rows.append(
            f"  same, one GET per item: {per_item['tracker_core'] * 100:.1f}% of a core, "
            f"{per_item['polls_per_s']:.0f} polls/s of {per_item['polls_needed_per_s']:.0f} needed"
        )
    rows.append("  (others: cores busy with neither Gust nor the benchmark during the mode — other people's load)")
    rows.append("targets:")
    for t in result.get("targets", []):
        mark = "MET " if t["met"] else "MISS"
        rows.append(
            f"  [{mark}] {t['target']}: {t['value']} (limit {t['limit']} {t['unit']})"
            + (f" — {t['note']}" if t.get("note") else "")
        )
    return "\n".join(rows)
