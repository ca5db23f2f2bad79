"""Run the completion comparison against real Gust processes.

Used by ``manage.py compare_completion`` in its child process, whose Django
database is the throwaway one (bench.isolation). The driver itself only
*reads* that database (to wait for SUCCESS and to read task start times);
all work is done by the Gust processes it started (bench.procs), over HTTP:

1. the simulated outside service runs as its own process (bench.outside);
2. executions of ``compare_job`` are started with ``POST /v2/executions``
   at a steady rate; the worker POSTs each job to the outside service;
3. the service finishes each job after ``delay + U(0, jitter)`` s, records
   ``t_done`` and (callback, hybrid) PUTs the result to Gust-Callback-URL;
4. latency = ``TaskExecution(next).started_at - t_done`` of its job.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from bench import compare
from bench.compare import Mode, Options
from bench.procs import ROOT, GustProcesses, orphan_guard

SETTLE_S = 0.5  # after the last execution: the processes' trailing work (a heartbeat, a deleted row) is counted
PROGRESS_EVERY_S = 10.0  # a line "n/N SUCCESS after t s" while a long wait goes on


class CompareFailure(Exception):
    """Executions did not all reach SUCCESS in time, or a process died."""


class Outside:
    """The outside service's process and its HTTP client."""

    def __init__(self, scratch: Path, delay: float):
        self.log = scratch / "outside.log"
        self._log = open(self.log, "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bench.outside", "--delay", str(delay)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            start_new_session=True,
            preexec_fn=orphan_guard(),
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        line = self.proc.stdout.readline().strip()
        if not line.startswith("listening on "):
            self.stop()
            raise CompareFailure(f"the outside service did not start: {line!r} {self.log.read_text()[-2000:]}")
        self.url = line.removeprefix("listening on ")
        self.http = requests.Session()

    def jobs(self, tag: str | None = None) -> list[dict]:
        params = {"tag": tag} if tag else {}
        return self.http.get(f"{self.url}/_bench/jobs", params=params, timeout=60).json()["jobs"]

    def reset_gaps(self) -> None:
        self.http.post(f"{self.url}/_bench/reset-gaps", timeout=10).raise_for_status()

    def counters(self) -> dict:
        return self.http.get(f"{self.url}/_bench/health", timeout=10).json()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self._log.close()


class Driver:
    def __init__(self, opts: Options, procs: GustProcesses, outside: Outside, say: Callable[[str], None] = print):
        self.opts = opts
        self.procs = procs
        self.outside = outside
        self.say = say
        self.url = procs.url
        self._local = threading.local()

    # -- starting and waiting -------------------------------------------------

    def _session(self) -> requests.Session:
        s = getattr(self._local, "s", None)
        if s is None:
            s = self._local.s = requests.Session()
        return s

    def job_input(self, mode: Mode, tag: str, *, never: bool = False, interval: float | None = None) -> dict:
        o = self.opts
        return {
            "url": f"{self.outside.url}/jobs",
            "tracking": mode.tracking,
            # Per action as well as in the tracker's environment: the TrackedAction
            # row (and its first query time) is written by the *web* process, which
            # would otherwise apply its own QUERY_INTERVAL (see bench/README.md).
            "query_interval": interval if interval is not None else mode.interval,
            "grace": o.grace_for(mode),
            "job": {
                "delay": o.delay,
                "jitter": o.jitter_for(mode),
                "tag": tag,
                "never": never,
                "callback": mode.tracking != "poll",
                "drop_fraction": o.drop_fraction if mode.tracking == "hybrid" else 0.0,
            },
        }

    def _start_one(self, wf_input: dict) -> str:
        body = {"workflow_name": compare.WORKFLOW, "input": wf_input}
        resp = self._session().post(f"{self.url}/v2/executions", json=body, timeout=120)
        if resp.status_code != 201:
            raise CompareFailure(f"POST /v2/executions answered {resp.status_code}: {resp.text[:500]}")
        return resp.json()["id"]

    def submit(self, inputs: list[dict], rate: float | None, threads: int = 1) -> tuple[list[str], float]:
        """Start one execution per input: at ``rate`` per second from one
        thread, or as fast as ``threads`` threads go. Returns (ids, seconds)."""
        t0 = time.monotonic()
        if rate:
            ids = []
            for i, inp in enumerate(inputs):
                pause = t0 + i / rate - time.monotonic()
                if pause > 0:
                    time.sleep(pause)
                ids.append(self._start_one(inp))
        else:
            with ThreadPoolExecutor(threads) as pool:
                ids = list(pool.map(self._start_one, inputs))
        return ids, time.monotonic() - t0

    def wait_success(self, ids: list[str], timeout: float, on_tick: Callable[[], None] | None = None) -> float:
        """Until every execution is SUCCESS; raises CompareFailure on another
        terminal state, a dead process, or the timeout. Returns the seconds waited."""
        from core.states import TERMINAL, State
        from workflows.models import WorkflowExecution

        t0 = time.monotonic()
        pending = list(ids)
        last_tick = 0.0
        last_report = t0
        while pending:
            still = []
            for chunk in _chunks(pending):
                for ex_id, state, info in (
                    WorkflowExecution.objects.filter(id__in=chunk)
                    .exclude(state=State.SUCCESS)
                    .values_list("id", "state", "state_info")
                ):
                    if state in TERMINAL:
                        raise CompareFailure(f"execution {ex_id} ended in {state}: {info}")
                    still.append(ex_id)
            pending = still
            if not pending:
                break
            self.procs.check_alive()
            if time.monotonic() - t0 > timeout:
                raise CompareFailure(f"{len(pending)} of {len(ids)} executions not SUCCESS after {timeout:.0f} s")
            if time.monotonic() - last_report >= PROGRESS_EVERY_S:
                last_report = time.monotonic()
                self.say(f"compare:   {len(ids) - len(pending)}/{len(ids)} SUCCESS after {last_report - t0:.0f} s")
            if on_tick and time.monotonic() - last_tick >= 2.0:
                on_tick()
                last_tick = time.monotonic()
            time.sleep(0.1)
        return time.monotonic() - t0

    def wait_jobs_started(self, tag: str, count: int, timeout: float) -> None:
        """Until the outside service has received ``count`` jobs tagged ``tag``."""
        t0 = time.monotonic()
        while True:
            got = self.outside.counters().get("by_tag", {}).get(tag, 0)
            if got >= count:
                return
            self.procs.check_alive()
            if time.monotonic() - t0 > timeout:
                raise CompareFailure(
                    f"only {got} of {count} '{tag}' jobs reached the outside service in {timeout:.0f} s"
                )
            time.sleep(0.5)

    def wait_handed_over(self, timeout: float) -> None:
        """Until the worker has finished its bookkeeping for every job it sent
        (``record_action_info(started=True)`` stamps ``handed_over_at``), so a
        following measurement does not include the tail of the dispatching."""
        from core.states import State
        from workflows.models import HANDED_OVER, ActionExecution

        t0 = time.monotonic()
        pending = ActionExecution.objects.filter(state=State.RUNNING, name="gust.http_job").exclude(
            runtime_context__has_key=HANDED_OVER
        )
        while pending.exists() and time.monotonic() - t0 < timeout:
            self.procs.check_alive()
            time.sleep(0.2)

    # -- reading results ---------------------------------------------------------

    def latencies(self, ids: list[str], tag: str) -> tuple[list[dict], list[str]]:
        """One row per execution: latency and how its result arrived."""
        from workflows.models import ActionExecution, TaskExecution

        action_of, started = {}, {}
        for chunk in _chunks(ids):
            action_of.update(
                ActionExecution.objects.filter(workflow_execution_id__in=chunk, name="gust.http_job").values_list(
                    "workflow_execution_id", "id"
                )
            )
            started.update(
                TaskExecution.objects.filter(workflow_execution_id__in=chunk, name="next").values_list(
                    "workflow_execution_id", "started_at"
                )
            )
        jobs = {j["action_id"]: j for j in self.outside.jobs(tag)}
        rows, problems = [], []
        for ex_id in ids:
            job = jobs.get(action_of.get(ex_id))
            began = started.get(ex_id)
            if job is None or began is None or job["t_done"] is None:
                problems.append(f"{ex_id}: job {'missing' if job is None else 'not done'}, next started {began}")
                continue
            via = "callback" if job["callback"] and not job["dropped"] else "poll"
            # Where the time went: the outside side (waiting for a poll to ask,
            # or handing the callback to a sender thread) vs Gust applying it.
            noticed = job["callback_sent_at"] if via == "callback" else job["seen_done_at"]
            if via == "callback" and job["seen_done_at"] and (not noticed or job["seen_done_at"] < noticed):
                noticed = job["seen_done_at"]  # hybrid: a poll may have been first
            rows.append(
                {
                    "ms": (began.timestamp() - job["t_done"]) * 1000.0,
                    "via": via,
                    "notice_ms": (noticed - job["t_done"]) * 1000.0 if noticed else None,
                    "apply_ms": (began.timestamp() - noticed) * 1000.0 if noticed else None,
                    "status_queries": job["status_queries"],
                    "callback_attempts": job["callback_attempts"],
                    "callback_status": job["callback_status"],
                    "dropped": job["dropped"],
                }
            )
        return rows, problems

    def tracker_stats(self) -> dict:
        from tracker import services

        s = services.stats()
        return {k: s[k] for k in ("tracked", "due", "lag_s", "erroring")}

    # -- one mode ------------------------------------------------------------------

    def warm_up(self) -> None:
        n = self.opts.warmup
        if n <= 0:
            return
        mode = Mode("callback")
        inputs = [self.job_input(mode, "warmup") for _ in range(n)]
        for inp in inputs:
            inp["job"].update(delay=0.05, jitter=0.0)
        ids, _ = self.submit(inputs, rate=None, threads=2)
        self.wait_success(ids, timeout=120)
        self.say(f"compare: warm-up of {n} callback executions done (web and worker answer)")

    def idle_baseline(self) -> dict:
        seconds = self.opts.idle_baseline_seconds
        before = self.procs.snapshot()
        time.sleep(seconds)
        after = self.procs.snapshot()
        d = before.delta(after)
        return {
            "seconds": d["seconds"],
            "cpu_s_per_s": {k: round(v / d["seconds"], 4) for k, v in d["cpu_s"].items()},
            "statements_per_s": {k: round(v["statements"] / d["seconds"], 1) for k, v in d["queries"].items()},
        }

    def _timeout(self, n: int, interval: float, mode_delay: float, jitter: float) -> float:
        return n / self.opts.rate + mode_delay + jitter + 3 * interval + 60.0

    def measure(self, mode: Mode, tag: str, n: int, on_tick: Callable[[], None] | None = None) -> dict:
        """Start ``n`` executions in ``mode`` at the configured rate and wait for
        all; CPU and SQL from before the first start to the last SUCCESS."""
        o = self.opts
        inputs = [self.job_input(mode, tag) for _ in range(n)]
        before = self.procs.snapshot()
        ids, submit_s = self.submit(inputs, rate=o.rate)
        timeout = self._timeout(n, mode.interval or 0.0, o.delay, o.jitter_for(mode))
        self.wait_success(ids, timeout, on_tick)
        time.sleep(SETTLE_S)
        after = self.procs.snapshot()
        usage = before.delta(after)
        rows, problems = self.latencies(ids, tag)
        if problems:
            raise CompareFailure(f"{tag}: {len(problems)} execution(s) without a latency: " + "; ".join(problems[:5]))
        ms = [r["ms"] for r in rows]
        q = usage["queries"]
        breakdown = {
            "until_noticed_ms": compare.latency_summary([r["notice_ms"] for r in rows if r["notice_ms"] is not None]),
            "noticed_to_next_running_ms": compare.latency_summary(
                [r["apply_ms"] for r in rows if r["apply_ms"] is not None]
            ),
        }
        out = {
            "n": n,
            "completed": len(rows),
            "wall_s": usage["seconds"],
            "submit_s": round(submit_s, 3),
            "submit_rate_per_s": round(n / submit_s, 1) if submit_s > 0 else None,
            "latency_ms": compare.latency_summary(ms),
            # until_noticed: t_done -> the callback PUT starts, or a status answer says SUCCESS;
            # noticed_to_next_running: from there until the next task's started_at.
            "latency_breakdown": breakdown,
            "latencies_ms": sorted(round(x, 1) for x in ms),
            "cpu_s": usage["cpu_s"],
            "cpu_ms_per_completion": round(usage["cpu_s"]["total"] * 1000 / n, 2),
            "machine": usage["machine"],
            "queries": {
                "per_completion": round(q["total"]["statements"] / n, 1),
                "commits_per_completion": round(q["total"]["commits"] / n, 2),
                "by_role": {
                    role: {
                        "statements": v["statements"],
                        "commits": v["commits"],
                        "per_completion": round(v["statements"] / n, 1),
                    }
                    for role, v in q.items()
                    if role != "total"
                },
                "total": q["total"],
            },
            "outside": {
                "status_queries": sum(r["status_queries"] for r in rows),
                "status_queries_per_completion": round(sum(r["status_queries"] for r in rows) / n, 2),
                "callbacks_sent": sum(1 for r in rows if r["via"] == "callback"),
                "callbacks_dropped": sum(1 for r in rows if r["dropped"]),
                "callback_retries": sum(max(0, (r["callback_attempts"] or 0) - 1) for r in rows),
                "callback_errors": sum(1 for r in rows if (r["callback_status"] or 200) >= 400),
            },
        }
        if "top_statements" in usage:
            out["queries"]["top_statements"] = usage["top_statements"]
        if mode.tracking == "hybrid":
            out["latency_by_route_ms"] = {
                via: compare.latency_summary([r["ms"] for r in rows if r["via"] == via]) for via in ("callback", "poll")
            }
            out["dropped_fraction"] = round(out["outside"]["callbacks_dropped"] / n, 3)
        return out

    def run_mode(self, mode: Mode) -> dict:
        o = self.opts
        if mode.tracked:
            self.procs.start_tracker(mode.interval, mode.pool, o.batch_queries)
        else:
            self.procs.stop_tracker()
        time.sleep(1.0)  # the tracker's start-up CPU (imports, first empty cycle) is not the mode's
        self.say(
            f"[{mode.name}] {o.n} executions at {o.rate:g}/s, "
            f"job delay {o.delay:g} s + U(0, {o.jitter_for(mode):g}) s"
            + (f", QUERY_INTERVAL {mode.interval:g} s, THREAD_POOL_SIZE {mode.pool}" if mode.tracked else "")
            + (
                f", grace {o.grace_for(mode):g} s, {o.drop_fraction:.0%} of callbacks dropped"
                if mode.tracking == "hybrid"
                else ""
            )
        )
        measured = self.measure(mode, mode.name, o.n)
        self.procs.stop_tracker()
        result = {
            "name": mode.name,
            "tracking": mode.tracking,
            "query_interval": mode.interval,
            "thread_pool_size": mode.pool,
            "grace_s": o.grace_for(mode),
            "query_function": (
                ("bench.queries.batch_status" if o.batch_queries else "tracker.queries.http_status")
                if mode.tracked
                else None
            ),
            "job_delay_s": o.delay,
            "job_jitter_s": o.jitter_for(mode),
            **measured,
        }
        lat = result["latency_ms"]
        self.say(
            f"[{mode.name}] p50 {lat['p50']} ms, p95 {lat['p95']} ms, p99 {lat['p99']} ms; "
            f"CPU {result['cpu_s']['total']} s; "
            f"{result['queries']['per_completion']} SQL statements per completion"
        )
        return result

    # -- extras ---------------------------------------------------------------------

    def _extra_mode(self) -> Mode:
        return Mode("poll", self.opts.extra_interval, self.opts.extra_pool)

    def create_background(self, count: int, tag: str) -> float:
        """``count`` tracked poll executions whose jobs never finish. The tracker
        is stopped meanwhile; returns the seconds it took."""
        if count <= 0:
            return 0.0
        self.procs.stop_tracker()
        mode = self._extra_mode()
        inputs = [self.job_input(mode, tag, never=True) for _ in range(count)]
        t0 = time.monotonic()
        self.say(f"compare: starting {count} never-finishing tracked executions ({self.opts.create_threads} threads)")
        _, posted = self.submit(inputs, rate=None, threads=self.opts.create_threads)
        self.wait_jobs_started(tag, count, timeout=600 + count / 10)
        self.wait_handed_over(timeout=120)
        seconds = time.monotonic() - t0
        self.say(
            f"compare: {count} background jobs started in {seconds:.1f} s ({count / seconds:.0f}/s; "
            f"POST /v2/executions took {posted:.1f} s, the worker's dispatch the rest)"
        )
        return seconds

    def wait_caught_up(self, timeout: float) -> dict:
        """Until the tracker's lag behind schedule is under one interval."""
        t0 = time.monotonic()
        while True:
            s = self.tracker_stats()
            if s["lag_s"] < self.opts.extra_interval or time.monotonic() - t0 > timeout:
                s["waited_s"] = round(time.monotonic() - t0, 1)
                return s
            self.procs.check_alive()
            time.sleep(0.5)

    def run_sample(self, key: str, outstanding: int) -> dict:
        """Latency of ``sample`` finishing poll jobs while ``outstanding`` tracked
        jobs are pending (the never-finishing background plus the sample)."""
        o = self.opts
        mode = self._extra_mode()
        self.procs.start_tracker(mode.interval, mode.pool, batch_queries=True)
        caught_up = self.wait_caught_up(timeout=60)
        self.say(
            f"[{key}] {o.sample} finishing poll jobs among {outstanding} outstanding "
            f"(QUERY_INTERVAL {mode.interval:g} s, batch queries); tracker lag {caught_up['lag_s']} s"
        )
        lags = []
        measured = self.measure(
            mode, f"sample-{key}", o.sample, on_tick=lambda: lags.append(self.tracker_stats()["lag_s"])
        )
        end = self.tracker_stats()
        lags.append(end["lag_s"])
        self.procs.stop_tracker()
        lat = measured["latency_ms"]
        core = measured["cpu_s"]["tracker"] / measured["wall_s"] if measured["wall_s"] else 0.0
        self.say(
            f"[{key}] p50 {lat['p50']} ms, p95 {lat['p95']} ms, p99 {lat['p99']} ms; "
            f"tracker {core * 100:.1f}% of a core"
        )
        return {
            "outstanding": outstanding,
            "sample": o.sample,
            "query_interval": mode.interval,
            "thread_pool_size": mode.pool,
            "query_function": "bench.queries.batch_status",
            "tracker_core": round(core, 4),
            "max_lag_s": max(lags),
            "lag_samples_s": lags,
            "lag_before_s": caught_up["lag_s"],
            "catch_up_wait_s": caught_up["waited_s"],
            **measured,
        }

    def measure_idle(self, tracked: int, seconds: float, batch: bool, on_window=None, probe=None) -> dict:
        """Tracker CPU while ``tracked`` jobs that never finish are polled;
        ``on_window(probe())`` at the start and the end of the window."""
        mode = self._extra_mode()
        self.procs.start_tracker(mode.interval, mode.pool, batch_queries=batch)
        caught_up = self.wait_caught_up(timeout=30)
        outside0 = self.outside.counters()
        before = self.procs.snapshot()
        if on_window:
            on_window(probe())
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.procs.check_alive()
            time.sleep(min(1.0, max(0.0, end - time.monotonic())))
        after = self.procs.snapshot()
        if on_window:
            on_window(probe())
        outside1 = self.outside.counters()
        stats = self.tracker_stats()
        self.procs.stop_tracker()
        usage = before.delta(after)
        wall = usage["seconds"]
        polls = (
            (outside1["batch_ids"] - outside0["batch_ids"])
            if batch
            else (outside1["status_queries"] - outside0["status_queries"])
        )
        core = usage["cpu_s"]["tracker"] / wall
        tq = usage["queries"].get("tracker", {"statements": 0, "commits": 0})
        return {
            "machine": usage["machine"],
            "tracked": tracked,
            "query_interval": mode.interval,
            "thread_pool_size": mode.pool,
            "query_function": "bench.queries.batch_status" if batch else "tracker.queries.http_status",
            "seconds": wall,
            "cpu_s": usage["cpu_s"],
            "tracker_core": round(core, 4),
            "tracker_core_per_1000": round(core / (tracked / 1000), 4),
            "polls_per_s": round(polls / wall, 1),
            "polls_needed_per_s": round(tracked / mode.interval, 1),
            "batch_requests_per_s": round((outside1["batch_queries"] - outside0["batch_queries"]) / wall, 2),
            "tracker_statements_per_s": round(tq["statements"] / wall, 1),
            "tracker_commits_per_s": round(tq["commits"] / wall, 2),
            "all_statements_per_s": round(usage["queries"]["total"]["statements"] / wall, 1),
            "lag_before_s": caught_up["lag_s"],
            "lag_after_s": stats["lag_s"],
            "due_after": stats["due"],
        }

    def run_extras(self) -> dict:
        o = self.opts
        extras = {}
        extras["few"] = self.run_sample("few", o.sample)
        created = self.create_background(o.idle_tracked, "idle")
        idle = self.measure_idle(o.idle_tracked, o.idle_seconds, batch=True)
        extras["idle"] = {**idle, "create_s": round(created, 1)}
        i = extras["idle"]
        self.say(
            f"[idle] {o.idle_tracked} tracked at {i['query_interval']:g} s for {i['seconds']:.0f} s: tracker "
            f"{i['tracker_core'] * 100:.2f}% of a core ({i['tracker_core_per_1000'] * 100:.2f}% per 1,000), "
            f"{i['polls_per_s']:.0f} polls/s, {i['tracker_statements_per_s']} SQL/s"
        )
        if o.idle_per_item_seconds > 0:
            extras["idle_per_item"] = self.measure_idle(o.idle_tracked, o.idle_per_item_seconds, batch=False)
            p = extras["idle_per_item"]
            self.say(
                f"[idle, GET per item] tracker {p['tracker_core'] * 100:.1f}% of a core, "
                f"{p['polls_per_s']:.0f} polls/s of {p['polls_needed_per_s']:.0f} needed, "
                f"lag {p['lag_after_s']} s"
            )
        more = max(0, o.outstanding - o.idle_tracked)
        created = self.create_background(more, "outstanding")
        extras["many"] = {**self.run_sample("many", o.idle_tracked + more + o.sample), "create_s": round(created, 1)}
        return extras


def _chunks(items: list, size: int = 500):
    for i in range(0, len(items), size):
        yield items[i : i + size]
