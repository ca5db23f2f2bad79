"""The tracker at scale: ``manage.py compare_completion --scale`` (issue 11).

One run measures, against the simulated outside service and real tracker
processes on the throwaway database:

- ``floor``: CPU per request of a bare keep-alive ``http.client`` GET with a
  JSON answer, in this process (and, for comparison, through a
  ``requests.Session`` and through ``tracker.http.get_json``);
- ``per_item``: one GET per tracked action (``tracker.queries.http_status``)
  at a 1 s interval: the tracker's CPU per poll (its database work included)
  with N never-finishing jobs, then p95 of a sample of finishing jobs among
  them; once with one tracker and N=500, once with two tracker processes and
  N=1,000; and how many jobs were polled twice within half an interval;
- ``batch_idle``: the batch query function (``many = True``), 1,000 tracked
  at 1 s: tracker CPU as a share of a core;
- ``batch``: p95 of 200 finishing jobs among 200, 10,000 and 100,000
  outstanding at a 5 s interval;
- ``fast``: a 0.1 s interval with about 100 outstanding.

The never-finishing jobs are written straight into the database (ad-hoc
``gust.http_job`` actions already handed over, with their tracking rows
spread over one interval) instead of through ``POST /v2/executions``, which
would take an hour for 100,000; the finishing samples go the whole way
(POST, worker, outside service, tracker, next task).
"""

from __future__ import annotations

import http.client
import json
import random
import time
import uuid
from datetime import timedelta
from urllib.parse import urlsplit

import requests

from bench import compare
from bench.compare import Mode

SYNTHETIC = "bench-synthetic"  # ActionExecution.workflow_name and TrackedAction.added_by of the written rows
EARLY = 0.5  # two status queries of one job closer than this share of the interval: polled twice in one interval


def full_sizes() -> dict:
    return {
        "floor_requests": 3000,
        "per_item": [(500, 1), (1000, 2)],
        "per_item_seconds": 15.0,
        "sample": 200,
        "per_item_sample": 100,
        "batch_idle": 1000,
        "batch_idle_seconds": 20.0,
        "batch_outstanding": [200, 10_000, 100_000],
        "fast_n": 100,
        "fast_rate": 50.0,
    }


def quick_sizes() -> dict:
    return {
        "floor_requests": 300,
        "per_item": [(40, 1), (80, 2)],
        "per_item_seconds": 3.0,
        "sample": 10,
        "per_item_sample": 10,
        "batch_idle": 100,
        "batch_idle_seconds": 3.0,
        "batch_outstanding": [10, 300],
        "fast_n": 10,
        "fast_rate": 20.0,
    }


# --- the floor ------------------------------------------------------------------


def _cpu() -> float:
    return time.process_time()


def floor(outside_url: str, n: int) -> dict:
    """CPU milliseconds per GET of one job's JSON status, three ways."""
    from django.conf import settings as django_settings
    from django.test import override_settings

    from tracker import http as tracker_http

    job = requests.post(
        f"{outside_url}/jobs",
        json={"never": True, "tag": "floor"},
        headers={"Mistral-Action-Execution-Id": f"floor-{uuid.uuid4()}"},
        timeout=10,
    ).json()
    url = job["status_url"]
    parts = urlsplit(url)

    conn = http.client.HTTPConnection(parts.hostname, parts.port)

    def bare():
        conn.request("GET", parts.path)
        json.loads(conn.getresponse().read())

    session = requests.Session()

    def with_requests():
        session.get(url, timeout=10).json()

    def with_tracker():
        tracker_http.get_json(url)

    out = {"requests": n, "url": "GET <outside>/jobs/<id> (keep-alive)"}
    loopback = {"DENIED_CIDRS": [], "ALLOWED_CIDRS": ["127.0.0.0/8"]}
    with override_settings(GUST={**django_settings.GUST, "EGRESS": loopback}):
        for key, fn in (("http_client", bare), ("requests_session", with_requests), ("tracker_http", with_tracker)):
            for _ in range(min(100, n)):
                fn()
            c0, t0 = _cpu(), time.perf_counter()
            for _ in range(n):
                fn()
            out[f"{key}_cpu_ms"] = round((_cpu() - c0) * 1000 / n, 4)
            out[f"{key}_wall_ms"] = round((time.perf_counter() - t0) * 1000 / n, 4)
    conn.close()
    tracker_http.close_all()
    return out


# --- never-finishing rows ----------------------------------------------------------


def add_synthetic(outside_url: str, count: int, interval: float, tag: str, with_jobs: bool) -> float:
    """``count`` tracked, handed-over ``gust.http_job`` actions that never
    finish, due uniformly over one interval; ``with_jobs`` also creates their
    jobs at the outside service (a GET per item needs one; the batch query
    counts unknown ids as still running). Returns the seconds it took."""
    from django.db import transaction
    from django.utils import timezone

    from core.states import State
    from tracker.models import TrackedAction
    from workflows.models import HANDED_OVER, ActionExecution

    t0 = time.monotonic()
    ids = [str(uuid.uuid4()) for _ in range(count)]
    if with_jobs:
        s = requests.Session()
        for aid in ids:
            s.post(
                f"{outside_url}/jobs",
                json={"never": True, "tag": tag},
                headers={"Mistral-Action-Execution-Id": aid},
                timeout=10,
            ).raise_for_status()
    now = timezone.now()
    rng = random.Random(count)
    for start in range(0, count, 5000):
        chunk = ids[start : start + 5000]
        with transaction.atomic():
            ActionExecution.objects.bulk_create(
                [
                    ActionExecution(
                        id=aid,
                        name="gust.http_job",
                        workflow_name=SYNTHETIC,
                        task_name="job",
                        state=State.RUNNING,
                        is_sync=False,
                        input={
                            "url": f"{outside_url}/jobs",
                            "tracking": "poll",
                            "status_url": f"{outside_url}/jobs/{aid}",
                        },
                        runtime_context={HANDED_OVER: now.isoformat()},
                        created_at=now,
                        updated_at=now,
                    )
                    for aid in chunk
                ],
                batch_size=1000,
            )
            TrackedAction.objects.bulk_create(
                [
                    TrackedAction(
                        action_id=aid,
                        mode="poll",
                        scheduled=True,
                        added_by=SYNTHETIC,
                        next_query_at=now + timedelta(seconds=rng.uniform(0, interval)),
                    )
                    for aid in chunk
                ],
                batch_size=1000,
            )
    return time.monotonic() - t0


def remove_synthetic() -> None:
    from django.db import transaction

    from workflows.models import ActionExecution

    while True:
        ids = list(ActionExecution.objects.filter(workflow_name=SYNTHETIC).values_list("id", flat=True)[:5000])
        if not ids:
            return
        with transaction.atomic():
            ActionExecution.objects.filter(id__in=ids).delete()  # their tracking rows go with them


def synthetic_count() -> int:
    from tracker.models import TrackedAction

    return TrackedAction.objects.filter(added_by=SYNTHETIC).count()


def hooks_cpu_s() -> float:
    """CPU seconds the trackers' periodic hooks used so far (each tracker
    reports its own with its heartbeat, TrackerProcess.periodic_cpu_s): the
    engine's sweeps, the inbox and the latency roll-up run in the tracker
    process, whatever it polls."""
    from django.db.models import Sum

    from tracker.models import TrackerProcess

    return TrackerProcess.objects.aggregate(s=Sum("periodic_cpu_s"))["s"] or 0.0


def early_polls(jobs: list[dict], interval: float) -> dict:
    """Jobs whose two closest status queries were less than EARLY × interval
    apart; and less than a tenth of it, the mark of one item claimed twice
    (two trackers at once), where the first also counts a query that came
    late after a busy cycle followed by one on time."""
    gaps = [j["min_query_gap"] for j in jobs if j.get("min_query_gap") is not None]
    return {
        "jobs_polled_more_than_once": len(gaps),
        "limit_s": round(EARLY * interval, 3),
        "polled_twice_in_one_interval": sum(1 for g in gaps if g < EARLY * interval),
        "within_a_tenth_of_an_interval": sum(1 for g in gaps if g < interval / 10),
        "min_gap_s": round(min(gaps), 4) if gaps else None,
    }


# --- the measurements ----------------------------------------------------------------


class Scale:
    def __init__(self, driver, sizes: dict):
        self.d = driver
        self.sizes = sizes
        self.say = driver.say

    def _resize(self, wanted: int, interval: float, tag: str, with_jobs: bool) -> float:
        self.d.procs.stop_tracker()
        have = synthetic_count()
        if have > wanted:
            remove_synthetic()
            have = 0
        return add_synthetic(self.d.outside.url, wanted - have, interval, tag, with_jobs) if wanted > have else 0.0

    def _sample(self, mode: Mode, tag: str, n: int, rate: float | None = None) -> dict:
        lags = []
        old_rate = self.d.opts.rate
        if rate:
            self.d.opts.rate = rate
        try:
            m = self.d.measure(mode, tag, n, on_tick=lambda: lags.append(self.d.tracker_stats()["lag_s"]))
        finally:
            self.d.opts.rate = old_rate
        lat = m["latency_ms"]
        return {
            "n": n,
            "latency_ms": lat,
            "latency_breakdown": m["latency_breakdown"],
            "wall_s": m["wall_s"],
            "tracker_core": round(m["cpu_s"]["tracker"] / m["wall_s"], 4) if m["wall_s"] else None,
            "max_lag_s": max(lags, default=None),
            "machine": m["machine"],
            "status_queries_per_completion": m["outside"]["status_queries_per_completion"],
        }

    def per_item(self, count: int, trackers: int) -> dict:
        interval, sz = 1.0, self.sizes
        tag = f"per-item-{count}"
        created = self._resize(count, interval, tag, with_jobs=True)
        self.d.procs.start_tracker(interval, 10, batch_queries=False, count=trackers)
        caught = self.d.wait_caught_up(timeout=60)
        self.d.outside.reset_gaps()
        o0, before, h0 = self.d.outside.counters(), self.d.procs.snapshot(), hooks_cpu_s()
        time.sleep(sz["per_item_seconds"])
        after, o1, h1 = self.d.procs.snapshot(), self.d.outside.counters(), hooks_cpu_s()
        usage = before.delta(after)
        polls = o1["status_queries"] - o0["status_queries"]
        lag_after = self.d.tracker_stats()["lag_s"]
        self.say(
            f"[per-item {count}, {trackers} tracker(s)] {polls / usage['seconds']:.0f} polls/s; sampling "
            f"{sz['per_item_sample']} finishing jobs"
        )
        sample = self._sample(Mode("poll", interval, 10), f"{tag}-sample", sz["per_item_sample"])
        jobs = [j for j in self.d.outside.jobs() if (j.get("tag") or "").startswith("per-item-")]
        self.d.procs.stop_tracker()
        tq = usage["queries"].get("tracker", {"statements": 0, "commits": 0})
        out = {
            "outstanding": count,
            "trackers": trackers,
            "query_interval": interval,
            "thread_pool_size": 10,
            "query_function": "tracker.queries.http_status",
            "create_s": round(created, 1),
            "seconds": usage["seconds"],
            "polls": polls,
            "polls_per_s": round(polls / usage["seconds"], 1),
            "polls_needed_per_s": round(count / interval, 1),
            "tracker_cpu_s": usage["cpu_s"]["tracker"],
            "tracker_cpu_ms_per_poll": round(usage["cpu_s"]["tracker"] * 1000 / polls, 4) if polls else None,
            "hooks_cpu_s": round(h1 - h0, 3),
            "tracker_cpu_ms_per_poll_without_hooks": round((usage["cpu_s"]["tracker"] - (h1 - h0)) * 1000 / polls, 4)
            if polls
            else None,
            "tracker_core": round(usage["cpu_s"]["tracker"] / usage["seconds"], 4),
            "tracker_statements_per_poll": round(tq["statements"] / polls, 3) if polls else None,
            "tracker_commits_per_s": round(tq["commits"] / usage["seconds"], 2),
            "lag_before_s": caught["lag_s"],
            "lag_after_s": lag_after,
            "machine": usage["machine"],
            "sample": sample,
            "early": early_polls(jobs, interval),
        }
        self.say(
            f"[per-item {count}, {trackers} tracker(s)] {out['tracker_cpu_ms_per_poll']} ms CPU per poll, "
            f"p95 {sample['latency_ms']['p95']} ms, polled twice in one interval: "
            f"{out['early']['polled_twice_in_one_interval']}"
        )
        return out

    def batch_idle(self) -> dict:
        count = self.sizes["batch_idle"]
        created = self._resize(count, 1.0, "batch-idle", with_jobs=False)
        hooks = []
        out = self.d.measure_idle(
            count, self.sizes["batch_idle_seconds"], batch=True, on_window=hooks.append, probe=hooks_cpu_s
        )
        if len(hooks) == 2:
            out["hooks_cpu_s"] = round(hooks[1] - hooks[0], 3)
            out["tracker_core_without_hooks"] = round(
                (out["cpu_s"]["tracker"] - out["hooks_cpu_s"]) / out["seconds"], 4
            )
        out["create_s"] = round(created, 1)
        self.say(
            f"[batch idle {count} at 1 s] tracker {out['tracker_core'] * 100:.2f}% of a core "
            f"({out['tracker_core_per_1000'] * 100:.2f}% per 1,000), {out['polls_per_s']:.0f} polls/s"
        )
        return out

    def batch(self, outstanding: int) -> dict:
        interval, n = 5.0, min(self.sizes["sample"], outstanding)
        created = self._resize(outstanding - n, interval, "batch", with_jobs=False)
        self.d.procs.start_tracker(interval, 10, batch_queries=True)
        caught = self.d.wait_caught_up(timeout=120)
        self.say(
            f"[batch {outstanding} at 5 s] {n} finishing among {outstanding - n} never-finishing "
            f"(created in {created:.1f} s); lag {caught['lag_s']} s"
        )
        sample = self._sample(Mode("poll", interval, 10), f"batch-{outstanding}", n)
        self.d.procs.stop_tracker()
        self.say(
            f"[batch {outstanding} at 5 s] p95 {sample['latency_ms']['p95']} ms, tracker "
            f"{(sample['tracker_core'] or 0) * 100:.1f}% of a core, max lag {sample['max_lag_s']} s"
        )
        return {
            "outstanding": outstanding,
            "query_interval": interval,
            "thread_pool_size": 10,
            "query_function": "bench.queries.batch_status",
            "create_s": round(created, 1),
            "lag_before_s": caught["lag_s"],
            **sample,
        }

    def fast(self, batch: bool) -> dict:
        interval, n, rate = 0.1, self.sizes["fast_n"], self.sizes["fast_rate"]
        self._resize(0, interval, "fast", with_jobs=False)
        self.d.procs.start_tracker(interval, 10, batch_queries=batch)
        time.sleep(0.5)
        sample = self._sample(Mode("poll", interval, 10), f"fast-{'batch' if batch else 'item'}", n, rate=rate)
        self.d.procs.stop_tracker()
        self.say(f"[0.1 s, {'batch' if batch else 'GET per item'}] p95 {sample['latency_ms']['p95']} ms")
        return {
            "query_interval": interval,
            "thread_pool_size": 10,
            "started_per_s": rate,
            "job_delay_s": self.d.opts.delay,
            "outstanding_about": round(min(n, rate * (self.d.opts.delay + interval))),
            "query_function": "bench.queries.batch_status" if batch else "tracker.queries.http_status",
            **sample,
        }

    def run(self) -> dict:
        sz = self.sizes
        out = {"sizes": sz, "floor": floor(self.d.outside.url, sz["floor_requests"])}
        f = out["floor"]
        self.say(
            f"[floor] http.client {f['http_client_cpu_ms']} ms CPU per GET, "
            f"requests {f['requests_session_cpu_ms']} ms, tracker.http {f['tracker_http_cpu_ms']} ms"
        )
        for part in sz.get("parts") or ["per_item", "batch_idle", "batch", "fast"]:
            if part == "per_item":
                out["per_item"] = [self.per_item(count, trackers) for count, trackers in sz["per_item"]]
            elif part == "batch_idle":
                out["batch_idle"] = self.batch_idle()
            elif part == "batch":
                out["batch"] = [self.batch(n) for n in sz["batch_outstanding"]]
            elif part == "fast":
                out["fast"] = [self.fast(batch=True), self.fast(batch=False)]
            elif part != "floor":
                raise ValueError(f"no scale part {part!r}: floor, per_item, batch_idle, batch, fast")
        self._resize(0, 1.0, "done", with_jobs=False)
        return out


# --- targets and the report ------------------------------------------------------------


def _t(name, value, limit, met, unit, note=""):
    return compare._target(name, value, limit, met, unit, note)


def evaluate(scale: dict) -> list[dict]:
    out = []
    floor_ms = scale["floor"]["http_client_cpu_ms"]
    for p in scale.get("per_item", []):
        what = f"per item, {p['outstanding']} outstanding, {p['trackers']} tracker(s), 1 s"
        if p.get("tracker_cpu_ms_per_poll") is not None:
            limit = round(1.5 * floor_ms, 4)
            hooks = p.get("tracker_cpu_ms_per_poll_without_hooks")
            out.append(
                _t(
                    f"{what}: tracker CPU per poll <= 1.5 x the floor",
                    p["tracker_cpu_ms_per_poll"],
                    limit,
                    p["tracker_cpu_ms_per_poll"] <= limit,
                    "ms",
                    f"floor {floor_ms} ms (http.client)"
                    + (f"; without the periodic hooks {hooks} ms" if hooks is not None else ""),
                )
            )
        p95 = p["sample"]["latency_ms"]["p95"]
        if p95 is not None:
            out.append(
                _t(
                    f"{what}: p95 <= 1.1 s",
                    p95,
                    1100.0,
                    p95 <= 1100.0,
                    "ms",
                    f"{p['sample']['n']} finishing jobs; outside done -> next task running",
                )
            )
        early = p["early"]["polled_twice_in_one_interval"]
        out.append(
            _t(
                f"{what}: no item polled twice in one interval",
                early,
                0,
                early == 0,
                "items",
                f"status queries closer than {p['early']['limit_s']} s; closer than a tenth of the interval: "
                f"{p['early'].get('within_a_tenth_of_an_interval')}",
            )
        )
    idle = scale.get("batch_idle")
    if idle:
        v = idle["tracker_core_per_1000"]
        hooks = idle.get("tracker_core_without_hooks")
        out.append(
            _t(
                f"batch, {idle['tracked']} tracked at 1 s: <= 2% of a core per 1,000",
                round(v * 100, 3),
                2.0,
                v <= 0.02,
                "% of a core",
                f"without the periodic hooks {hooks * 100 / (idle['tracked'] / 1000):.2f}%"
                if hooks is not None
                else "",
            )
        )
    for b in scale.get("batch", []):
        p95 = b["latency_ms"]["p95"]
        if p95 is not None:
            out.append(
                _t(f"batch, {b['outstanding']} outstanding at 5 s: p95 <= 5.5 s", p95, 5500.0, p95 <= 5500.0, "ms")
            )
    for f in scale.get("fast", []):
        p95 = f["latency_ms"]["p95"]
        if p95 is not None:
            kind = "batch" if f["query_function"].startswith("bench") else "GET per item"
            out.append(
                _t(
                    f"0.1 s interval, ~{f['outstanding_about']} outstanding ({kind}): p95 <= 110 ms",
                    p95,
                    110.0,
                    p95 <= 110.0,
                    "ms",
                )
            )
    return out


def markdown(result: dict) -> str:
    scale, db = result["scale"], result["database"]
    m = result.get("machine") or {}
    lines = [
        f"# Tracker at scale — {db.get('vendor')} ({result.get('timestamp', '')})",
        "",
        f"`{result.get('command', '')}`; commit {str((m.get('git') or {}).get('commit', '?'))[:7]}"
        f"{' (dirty tree)' if (m.get('git') or {}).get('dirty') else ''}; "
        f"load average before: {m.get('loadavg_at_start')}; "
        f"load average after: {result.get('load_after')}.",
        "",
        "| target | value | limit | met | note |",
        "| --- | --- | --- | --- | --- |",
    ]
    for t in scale.get("targets", []):
        lines.append(
            f"| {t['target']} | {t['value']} {t['unit']} | {t['limit']} | {'yes' if t['met'] else '**no**'} "
            f"| {t.get('note', '')} |"
        )
    f = scale["floor"]
    lines += [
        "",
        "Floor (CPU per GET in the benchmark process, keep-alive): "
        f"http.client {f['http_client_cpu_ms']} ms, requests.Session {f['requests_session_cpu_ms']} ms, "
        f"tracker.http {f['tracker_http_cpu_ms']} ms.",
        "",
        "| measurement | polls/s (needed) | tracker CPU ms/poll | tracker % core | SQL/poll | p50 / p95 / p99 ms "
        "| until noticed p95 ms | others (cores) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for p in scale.get("per_item", []):
        lat, br = p["sample"]["latency_ms"], p["sample"]["latency_breakdown"]["until_noticed_ms"]
        lines.append(
            f"| per item, {p['outstanding']} outstanding, {p['trackers']} tracker(s), 1 s "
            f"| {p['polls_per_s']} ({p['polls_needed_per_s']}) | {p['tracker_cpu_ms_per_poll']} "
            f"| {p['tracker_core'] * 100:.1f} "
            f"| {p['tracker_statements_per_poll']} | {lat['p50']} / {lat['p95']} / {lat['p99']} "
            f"| {br['p95']} | {p['machine']['other_cores']} |"
        )
    idle = scale.get("batch_idle")
    if idle:
        lines.append(
            f"| batch, {idle['tracked']} tracked, 1 s, nothing finishing | {idle['polls_per_s']} "
            f"({idle['polls_needed_per_s']}) | | {idle['tracker_core'] * 100:.2f} | | | | "
            f"{idle['machine']['other_cores']} |"
        )
    for b in scale.get("batch", []) + scale.get("fast", []):
        lat, br = b["latency_ms"], b["latency_breakdown"]["until_noticed_ms"]
        kind = "batch" if b["query_function"].startswith("bench") else "per item"
        size = b.get("outstanding", f"~{b.get('outstanding_about')}")
        lines.append(
            f"| {kind}, {size} outstanding, {b['query_interval']:g} s | | | "
            f"{(b['tracker_core'] or 0) * 100:.1f} | | {lat['p50']} / {lat['p95']} / {lat['p99']} "
            f"| {br['p95']} | {b['machine']['other_cores']} |"
        )
    return "\n".join(lines) + "\n"
