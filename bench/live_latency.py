"""The live latency figures with millions of completions (``manage.py
latency_bench``): seed ``CompletionBucket`` rows as the tracker's roll-up
leaves them (one per minute, mode and action name), then time
``tracker.latency.figures()`` and the tracker page per time window, and the
roll-up of raw ``Completion`` rows. Runs in the child, on a throwaway database."""

from __future__ import annotations

import random
import statistics
import time
from datetime import timedelta

GROUPS = [
    ("callback", "fetch.build"),
    ("poll", "fetch.build"),
    ("hybrid-callback", "deploy.stack"),
    ("hybrid-poll", "deploy.stack"),
    ("by hand", "std.async_noop"),
    ("approval", "gust.approval"),
]


def _hist(rng: random.Random, centre: int, count: int) -> dict:
    h: dict[str, int] = {}
    for _ in range(min(count, 12)):
        k = str(centre + rng.randint(-4, 4))
        h[k] = h.get(k, 0) + max(1, count // 12)
    return h


def seed(completions: int, days: float, groups: int, say, minute_days: float = 2.0, hours: bool = True) -> dict:
    """Buckets for ``completions`` spread over ``days`` and ``groups`` (mode,
    action) pairs, as the roll-up leaves them: minute buckets for the last
    ``minute_days`` (all ``days`` without ``hours``), hour buckets for all."""
    from django.utils import timezone

    from tracker.models import CompletionBucket

    rng = random.Random(11)
    now = timezone.now().replace(second=0, microsecond=0)
    minutes = int(days * 1440)
    chosen = GROUPS[:groups]
    per = max(1, completions // (minutes * len(chosen)))
    t0 = time.perf_counter()
    batch, made = [], 0

    def bucket(start, span, mode, name, n):
        polled = n if mode.endswith("poll") else 0
        return CompletionBucket(
            minute=start,
            span=span,
            mode=mode,
            action_name=name,
            count=n,
            polls=polled * 2,
            polled=polled,
            interval_sum=polled * 5.0,
            statements=n * 11,
            counted=n,
            detect_hist=_hist(rng, 70 if polled else 20, n),
            next_hist=_hist(rng, 20, n),
        )

    def flush(force=False):
        nonlocal batch, made
        if batch and (force or len(batch) >= 5000):
            CompletionBucket.objects.bulk_create(batch)
            made += len(batch)
            batch = []
            if made % 50_000 < 5000:
                say(f"latency_bench: {made} buckets")

    for m in range(min(minutes, int(minute_days * 1440)) if hours else minutes):
        for mode, name in chosen:
            batch.append(bucket(now - timedelta(minutes=m), 1, mode, name, per))
        flush()
    if hours:
        hour = now.replace(minute=0)
        for h in range(minutes // 60 + 1):
            for mode, name in chosen:
                batch.append(bucket(hour - timedelta(hours=h), 60, mode, name, per * 60))
            flush()
    flush(force=True)
    return {
        "buckets": made,
        "completions": minutes * len(chosen) * per,
        "per_minute_bucket": per,
        "minutes": minutes,
        "groups": len(chosen),
        "seed_s": round(time.perf_counter() - t0, 1),
    }


def seed_raw(n: int) -> None:
    from django.utils import timezone

    from tracker.models import Completion

    now = timezone.now()
    rows = [
        Completion(
            action_id=f"a{i}",
            action_name="fetch.build",
            mode="callback",
            door="signed-url",
            detected_at=now - timedelta(seconds=30, milliseconds=i),
            recorded_at=now - timedelta(seconds=30),
            outside_done_at=now - timedelta(seconds=30, milliseconds=i + 5),
            statements=11,
        )
        for i in range(n)
    ]
    Completion.objects.bulk_create(rows, batch_size=5000)


def _timed(fn, repeats: int = 3) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1000)
    return round(statistics.median(times), 1)


def measure(raw: int, say) -> dict:
    from django.contrib.auth.models import User
    from django.test import Client

    from tracker import latency

    out: dict = {"figures_ms": {}, "page_ms": {}}
    user = User.objects.create_superuser("bench", "bench@example.com", "x")
    client = Client()
    client.force_login(user)
    for window in latency.WINDOWS:
        out["figures_ms"][window] = _timed(lambda w=window: latency.figures(w))
        out["page_ms"][window] = _timed(lambda w=window: client.get(f"/tracker/?window={w}"))
        say(f"latency_bench: window {window}: figures {out['figures_ms'][window]} ms, page {out['page_ms'][window]} ms")
    if raw:
        seed_raw(raw)
        t0 = time.perf_counter()
        folded = 0
        while True:
            n = latency.roll_up()
            folded += n
            if not n:
                break
        seconds = time.perf_counter() - t0
        out["roll_up"] = {
            "rows": folded,
            "seconds": round(seconds, 2),
            "rows_per_s": round(folded / seconds) if seconds else None,
        }
        say(f"latency_bench: rolled up {folded} raw completions in {seconds:.2f} s")
    return out
