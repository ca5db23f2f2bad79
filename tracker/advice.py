"""A recommendation per action name, from the live completion figures.

Pure: ``advise(rows)`` takes the per-(mode, action name) rows of
``tracker.latency.figures()["actions"]`` and says, per action name, what
the data supports — e.g. "polling every 5 s costs p95 4.8 s for fetch.build;
its service sends callbacks: hybrid would give p95 12 ms" — or that there is
not enough data yet. No Django here, so it is tested without a database.

The latency of a mode is its "outside done → detected" p95 when the outside
system reported ``finished_at``; for polling without it, about 0.95 × the
interval (a job ends at a uniformly random point between two polls).
"""

from __future__ import annotations

from dataclasses import dataclass

MIN_COMPLETIONS = 20  # fewer completions of an action name: no recommendation yet
POLLS_TOO_MANY = 10  # status queries per completion above which the interval is questioned
POLLS_TARGET = 5  # what a longer interval would aim at
CALLBACKS_LOST = 0.5  # hybrid: share of results that came by polling above which callbacks look lost


@dataclass(frozen=True)
class Advice:
    action_name: str
    kind: str  # not enough data, use hybrid, callbacks lost, poll less often, fine
    text: str


def fmt_ms(ms: float) -> str:
    if ms >= 1000:
        return f"{ms / 1000:.2g} s" if ms < 10_000 else f"{ms / 1000:.0f} s"
    return f"{ms:.2g} ms" if ms < 10 else f"{ms:.0f} ms"


def _p95(row: dict) -> tuple[float | None, bool]:
    """(p95 of outside done → detected in ms, measured): estimated from the interval for a poll without it."""
    detect = row.get("detect") or {}
    if detect.get("n") and detect.get("p95") is not None:
        return float(detect["p95"]), True
    if row["mode"].endswith("poll") and row.get("interval"):
        return 0.95 * float(row["interval"]) * 1000, False
    return None, False


def _latency_text(ms: float | None, measured: bool) -> str:
    return f"p95 {fmt_ms(ms)}" if measured else f"p95 about {fmt_ms(ms)}"


def advise(rows: list[dict], min_completions: int = MIN_COMPLETIONS) -> list[Advice]:
    """One Advice per action name in ``rows``, sorted by name."""
    names: dict[str, dict[str, dict]] = {}
    for row in rows:
        if row.get("action_name"):
            names.setdefault(row["action_name"], {})[row["mode"]] = row
    return [_one(name, modes, min_completions) for name, modes in sorted(names.items())]


def _one(name: str, modes: dict[str, dict], min_completions: int) -> Advice:
    total = sum(r["count"] for r in modes.values())
    if total < min_completions:
        return Advice(
            name,
            "not enough data",
            f"{name}: {total} completion{'s' if total != 1 else ''} in this window; "
            f"a recommendation needs {min_completions}.",
        )
    poll = modes.get("poll")
    callbacks = [r for m, r in modes.items() if m in ("callback", "hybrid-callback")]
    if poll and callbacks:
        # Some of its executions are polled, others show its service does call back.
        poll_ms, poll_measured = _p95(poll)
        best = max(callbacks, key=lambda r: r["count"])
        cb_ms, cb_measured = _p95(best)
        polling = " ".join(
            [
                "polling",
                *([f"every {poll['interval']:g} s"] if poll.get("interval") else []),
                *([f"costs {_latency_text(poll_ms, poll_measured)}"] if poll_ms is not None else []),
            ]
        )
        gain = (
            f"hybrid would give {_latency_text(cb_ms, cb_measured)}"
            if cb_ms is not None
            else "hybrid would answer as its callbacks arrive instead of at the next poll"
        )
        return Advice(name, "use hybrid", f"{polling} for {name}; its service sends callbacks: {gain}.")
    hybrid_poll, hybrid_cb = modes.get("hybrid-poll"), modes.get("hybrid-callback")
    hybrid_total = (hybrid_poll or {}).get("count", 0) + (hybrid_cb or {}).get("count", 0)
    if hybrid_poll and hybrid_total >= min_completions and hybrid_poll["count"] / hybrid_total > CALLBACKS_LOST:
        share = round(100 * hybrid_poll["count"] / hybrid_total)
        ms, measured = _p95(hybrid_poll)
        cost = f" (detection {_latency_text(ms, measured)})" if ms is not None else ""
        return Advice(
            name,
            "callbacks lost",
            f"{name}: {share}% of its hybrid results came by polling{cost}: its callbacks do not arrive; "
            f"check that its service can reach Gust's callback URL.",
        )
    if poll and not callbacks and (poll.get("polls_per_completion") or 0) > POLLS_TOO_MANY and poll.get("interval"):
        per = poll["polls_per_completion"]
        longer = poll["interval"] * per / POLLS_TARGET
        return Advice(
            name,
            "poll less often",
            f"{name}: {per:g} status queries per completion at every {poll['interval']:g} s; "
            f"polling every {longer:.2g} s would need about {POLLS_TARGET} "
            f"(p95 about {fmt_ms(0.95 * longer * 1000)}), or let its service call back.",
        )
    mix = ", ".join(f"{m} {r['count']}" for m, r in sorted(modes.items(), key=lambda kv: -kv[1]["count"]))
    return Advice(name, "fine", f"{name}: nothing to change ({mix}).")
